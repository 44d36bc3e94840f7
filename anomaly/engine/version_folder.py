"""A training run's claim on its version folder (``checkpoint/<version>/``): a lock held while it runs, so two
runs never write the same files at once, and a refusal to replace an earlier run's files by accident.

- The lock: ``checkpoint/<version>/.lock``, locked with ``fcntl.flock`` (released by the system when the process
  ends, however it ends) and holding the pid of its holder, so a second run names the process in its refusal.
  The file is removed when the run ends; folders the run created and left empty are removed too.
- Ownership: a run's files (best checkpoint, training state, ``.score`` and ``.log``) that already exist belong
  to an earlier run. Only ``--resume <that run's state>`` continues them and ``--overwrite`` replaces them;
  otherwise the run is refused before it reads its data.
- Leftovers: temporary files of writes killed half-way (``anomaly.files.atomic_write``) are removed under the lock.
"""

import fcntl
import os
from pathlib import Path
from typing import List, Optional, Sequence

from anomaly.errors import InputError
from anomaly.files import remove_temporaries

LOCK_NAME = ".lock"


class VersionFolder:
    """``with VersionFolder(folder, run_files):`` holds the lock of ``folder`` (created when missing) for the body.

    ``run_files``: every file the run writes (in this folder or elsewhere, e.g. the log folder).
    """

    def __init__(self, folder: Path, run_files: Sequence[Path]):
        self.folder = Path(folder)
        self.lock_file = self.folder / LOCK_NAME
        self.run_files = [Path(path) for path in run_files]
        self._descriptor: Optional[int] = None
        self._created: List[Path] = []

    def __enter__(self) -> "VersionFolder":
        self._created = [path for path in (self.folder, *self.folder.parents) if not path.exists()][::-1]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock()
        except BaseException:
            self._remove_created_folders()
            raise
        return self

    def __exit__(self, *_exception) -> None:
        if self._descriptor is not None:
            self.lock_file.unlink(missing_ok=True)  # still holding the lock: nobody has it in between
            os.close(self._descriptor)
            self._descriptor = None
        self._remove_created_folders()

    def _lock(self) -> None:
        while True:
            try:
                descriptor = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as error:
                raise InputError(self.folder, f"cannot create the lock file ({error.strerror or error})") from None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
                os.close(descriptor)
                raise InputError(
                    self.folder,
                    f"another training is running on this version (process {holder} holds {self.lock_file}); "
                    "wait for it to end, or choose another --version",
                ) from None
            # The previous holder removes the file as it ends: lock the file that is there now, not a removed one.
            try:
                current = os.stat(self.lock_file).st_ino == os.fstat(descriptor).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(descriptor)
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def _remove_created_folders(self) -> None:
        for folder in reversed(self._created):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break

    def check_owner(self, training_state: Path, resume: Optional[str], overwrite: bool) -> None:
        """Refuse a run that would replace an earlier run's files, unless it continues that run (``resume`` is its
        training state) or ``overwrite`` is set."""
        existing = [path for path in self.run_files if path.exists()]
        if not existing or overwrite:
            return
        if resume is not None and training_state.exists() and os.path.exists(resume):
            if os.path.samefile(resume, training_state):
                return
        continue_it = f"continue it with --resume {training_state}, " if training_state.exists() else ""
        raise InputError(
            self.folder,
            f"holds the files of an earlier run ({', '.join(path.name for path in existing)}): {continue_it}"
            "choose another --version, or pass --overwrite to replace them",
        )

    def clear(self, overwrite: bool) -> None:
        """Under the lock: remove leftovers of killed writes, and with ``overwrite`` the earlier run's files."""
        for path in self.run_files:
            remove_temporaries(path)
            if overwrite:
                path.unlink(missing_ok=True)
