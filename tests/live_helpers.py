"""Streams for the live-detection tests: a video's packets sent on at the pace of their timestamps, as a camera
sends them, into a FIFO or a UDP socket (MPEG-TS), by a PyAV writer in a thread."""

import socket
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import av


def send_paced(video: Path, target: str, ready: Callable[[], bool] = lambda: True, container_format: str = "mpegts",
               speed: float = 1.0) -> threading.Thread:  # fmt: skip
    """Start a thread that copies ``video``'s video packets (no re-encoding: the frames decoded on the other side are
    the file's) into ``target`` (a FIFO's path, a ``udp://`` URL), each when its time has come (``speed`` times
    real time), once ``ready()`` is true (polled). Each packet is written out at once (``flush_packets``). The
    thread ends when the video has been sent; its ``error`` attribute holds what stopped it early, if anything."""

    def send():
        try:
            while not ready():
                time.sleep(0.005)
            # A FIFO is opened here, by Python, which lets the other threads run while open() waits for the reader;
            # FFmpeg's own open would hold the interpreter, and the reader could never come.
            pipe = open(target, "wb", buffering=0) if "://" not in target else None
            with av.open(str(video)) as source, av.open(pipe or target, "w", format=container_format,
                                                         options={"flush_packets": "1"}) as sink:  # fmt: skip
                incoming = source.streams.video[0]
                outgoing = sink.add_stream_from_template(incoming)
                started, first = time.monotonic(), None
                for packet in source.demux(incoming):
                    if packet.dts is None:  # the demuxer's empty packet at the end
                        continue
                    stamp = float(packet.pts * packet.time_base)
                    first = stamp if first is None else first
                    time.sleep(max(0.0, started + (stamp - first) / speed - time.monotonic()))
                    packet.stream = outgoing
                    sink.mux(packet)
            if pipe is not None:
                pipe.close()  # the reader sees the end of the stream
        except BaseException as error:  # seen by the test that joins the thread
            thread.error = error

    thread = threading.Thread(target=send, name="paced-sender", daemon=True)
    thread.error: Optional[BaseException] = None
    thread.start()
    return thread


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def udp_port_bound(port: int) -> bool:
    """Whether a socket of this machine is bound to the UDP ``port`` (the kernel's table, /proc/net/udp): the
    receiver is listening, so nothing sent from now on is lost for want of one."""
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(int(line.split()[1].split(":")[1], 16) == port for line in lines)
