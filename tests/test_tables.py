"""Every printed table keeps its title whole: in the top border where it fits (the published tables' look), on its
own line above the table where the table is narrower (a long machine or dataset name)."""

import re

from anomaly.engine.report import metrics_table, summary_table
from anomaly.live.benchmark import Throughput, ThroughputRow
from anomaly.tables import ascii_table

LONG_MACHINE = ("Intel(R) Xeon(R) Platinum 8488C (GenuineIntel; avx2 avx512f avx512_bf16 amx_bf16 amx_tile; ATen "
                "kernels AVX512; MKL matrix products, oneDNN on), 2 threads").ljust(200, "+")


def test_a_title_that_fits_stays_in_the_border():
    table = ascii_table([["Dataset", "Method", "Feature", "AUC (%)"], ["shanghaitech", "S3R", "I3D", "97.400"]],
                        " Performance on shanghaitech ")
    assert re.fullmatch(r"\+ Performance on shanghaitech -+\+-+\+", table.splitlines()[0])


def test_a_title_wider_than_its_table_goes_whole_on_the_line_above():
    title = "x" * 200
    table = ascii_table([["a", "b"], ["1", "2"]], f" {title} ", {1: "right"})
    first, border, *_ = table.splitlines()
    assert first == title
    assert re.fullmatch(r"\+-+\+-+\+", border)


def test_the_live_throughput_table_names_a_200_character_machine_whole():
    result = Throughput(LONG_MACHINE, network="I3D", description="I3D ResNet-50 forward of one clip",
                        feature_size=2048, preset="rtfm", peaks={"fp32": 100.0}, resize_ms=5.0,
                        rows=[ThroughputRow("fp32", crops=1, network_ms=250.0, window_ms=10.0, network_gflop=32.8,
                                            window_gflop=1.6)])  # fmt: skip
    assert f"live throughput: {LONG_MACHINE}" in result.table()


def test_the_metric_tables_name_a_long_dataset_whole():
    dataset = "a-described-dataset-" + "with-a-long-name-" * 6
    assert f"Performance on {dataset}" in summary_table(dataset, "s3r", "i3d", "AUC", 0.974)
    report = {key: 0.5 for key in ("frame_auc", "anomalous_video_auc", "ap_stepwise", "ap_trapezoidal",
                                   "false_alarm_rate")}
    report.update(false_alarm_threshold=0.5, anomalous_videos=3, normal_videos=4)
    assert f"All metrics on {dataset}: 3 anomalous, 4 normal test videos" in metrics_table(dataset, report)
