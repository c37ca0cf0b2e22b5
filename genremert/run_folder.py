"""Protection of a training output folder: a finished run is never replaced by accident, and two runs never write
one folder at once."""

from __future__ import annotations

import os
import socket


LOCK_NAME = ".genremert-run.lock"
# Files whose presence means the folder holds a finished run.
FINISHED_RUN_FILES = ("all_results.json", "model.safetensors")


def check_output_dir(output_dir: str, do_train: bool, overwrite: bool, resume) -> None:
    """Refuse to train in a folder that holds a finished run, unless `--overwrite_output_dir` (Transformers'
    convention) or `--resume_from_checkpoint` (which continues it)."""
    if not do_train or overwrite or (resume is not None and str(resume).lower() not in ("false", "none", "")):
        return
    found = [name for name in FINISHED_RUN_FILES if os.path.isfile(os.path.join(output_dir, name))]
    if found:
        raise ValueError(
            f"--output_dir {output_dir} already holds a finished run ({', '.join(found)}); training again would replace "
            "its model and results. Choose another --output_dir, pass --overwrite_output_dir true to replace it, or "
            "--resume_from_checkpoint last to continue it."
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputDirLock:
    """An exclusive lock file in the output folder while a run writes it. A lock left by a process that no longer
    runs (on this machine) is taken over; a live one is an error naming its process."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, LOCK_NAME)
        self.owned = False

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    with open(self.path, encoding="utf-8") as handle:
                        host, pid = handle.read().split()
                    pid = int(pid)
                except (OSError, ValueError):
                    host, pid = None, None
                if host == socket.gethostname() and pid is not None and not _pid_alive(pid):
                    os.unlink(self.path)  # stale: its process is gone
                    continue
                raise RuntimeError(
                    f"{os.path.dirname(self.path)} is being written by another run ({host or 'unknown host'}, process "
                    f"{pid}): two runs in one --output_dir would mix their files. Wait for it, or use another folder; "
                    f"if no run is active, delete {self.path}."
                ) from None
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(me)
            self.owned = True
            return self
        raise RuntimeError(f"could not take the lock {self.path}")

    def __exit__(self, *exc_info):
        if self.owned and os.path.exists(self.path):
            os.unlink(self.path)
        self.owned = False
        return False
