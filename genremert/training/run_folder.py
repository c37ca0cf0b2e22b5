"""Protection of a training output folder: a finished run is never replaced by accident, and two runs never write
one folder at once."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

import transformers

from .trainer import NonFiniteLossError


logger = logging.getLogger(__name__)


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
    """An exclusive lock file in the output folder while a run writes it; it names the run's host and process.

    A lock whose process no longer runs is taken over when that process was on this host (checked by its process
    id). A process on another host cannot be checked from here, so the lock carries a heartbeat: a thread of the
    running run refreshes its modification time every `HEARTBEAT_SECONDS`, and another host's lock that has not been
    refreshed for `STALE_SECONDS` (a crashed or powered-off node, a killed job) is taken over with a warning;
    `break_stale=True` (`--break_stale_lock`) takes it over at once, for when you know that run is gone. Anything
    else is an error naming the host and process that hold it. (The age is judged by this host's clock against the
    file's modification time, as the shared filesystem records it: keep the nodes' clocks within minutes.)"""

    HEARTBEAT_SECONDS = 30.0
    STALE_SECONDS = 600.0

    def __init__(self, output_dir: str, break_stale: bool = False):
        self.path = os.path.join(output_dir, LOCK_NAME)
        self.break_stale = break_stale
        self.owned = False
        self._stop = None
        self._heartbeat = None

    def _holder(self) -> tuple[str | None, int | None, float | None]:
        """`(host, process id, seconds since the last heartbeat)` of the lock on disk (None where unreadable)."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                host, pid = handle.read().split()
            age = time.time() - os.stat(self.path).st_mtime
            return host, int(pid), age
        except (OSError, ValueError):
            return None, None, None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                host, pid, age = self._holder()
                if host == socket.gethostname() and pid is not None and not _pid_alive(pid):
                    os.unlink(self.path)  # stale: its process is gone
                    continue
                if host is not None and host != socket.gethostname():
                    if self.break_stale or (age is not None and age > self.STALE_SECONDS):
                        reason = "--break_stale_lock" if self.break_stale else f"no heartbeat for {age:.0f} s"
                        logger.warning(f"taking over {self.path} of {host} process {pid} ({reason}).")
                        os.unlink(self.path)
                        continue
                elsewhere = (
                    f" It is on another host: if that run is gone (a crashed node), pass --break_stale_lock true, or "
                    f"wait until its lock is {self.STALE_SECONDS / 60:.0f} minutes without heartbeat (now "
                    f"{age or 0:.0f} s)."
                    if host is not None and host != socket.gethostname()
                    else ""
                )
                raise RuntimeError(
                    f"{os.path.dirname(self.path)} is being written by another run ({host or 'unknown host'}, process "
                    f"{pid}): two runs in one --output_dir would mix their files. Wait for it, or use another folder; "
                    f"if no run is active, delete {self.path}.{elsewhere}"
                ) from None
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(me)
            self.owned = True
            self._start_heartbeat()
            return self
        raise RuntimeError(f"could not take the lock {self.path}")

    def _start_heartbeat(self) -> None:
        self._stop = threading.Event()

        def beat(stop=self._stop, path=self.path, period=self.HEARTBEAT_SECONDS):
            while not stop.wait(period):
                try:
                    os.utime(path)
                except OSError:
                    return  # the folder went away: nothing left to guard

        self._heartbeat = threading.Thread(target=beat, name="output-dir-lock-heartbeat", daemon=True)
        self._heartbeat.start()

    def __exit__(self, *exc_info):
        if self._stop is not None:
            self._stop.set()
            self._heartbeat.join()
            self._stop = self._heartbeat = None
        if self.owned and os.path.exists(self.path):
            os.unlink(self.path)
        self.owned = False
        return False


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints: checksums written after saving, verified before resuming
# ----------------------------------------------------------------------------------------------------------------------

CHECKSUMS_NAME = "checksums.json"
# What a checkpoint needs to resume exactly: the state, the weights, the optimizer and the LR scheduler.
RESUME_FILES = ("trainer_state.json", "model.safetensors", "optimizer.pt", "scheduler.pt")


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: str) -> str:
    """Record the SHA-256 of every file of a saved checkpoint in `checksums.json` (written atomically, last)."""
    import json

    checksums = {
        name: _sha256(os.path.join(folder, name))
        for name in sorted(os.listdir(folder))
        if name != CHECKSUMS_NAME and os.path.isfile(os.path.join(folder, name))
    }
    path = os.path.join(folder, CHECKSUMS_NAME)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(checksums, handle, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    return path


def checkpoint_problem(folder: str) -> str | None:
    """Why the checkpoint `folder` cannot be resumed from (naming the file), or None when it can: every file needed to
    resume is there and parses, and every recorded checksum matches (a flipped byte is caught too)."""
    import json

    for name in RESUME_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            return f"{path} is missing (the run would resume with a fresh {name.split('.')[0]})"
        if os.path.getsize(path) == 0:
            return f"{path} is empty"
    try:
        with open(os.path.join(folder, "trainer_state.json"), encoding="utf-8") as handle:
            json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{os.path.join(folder, 'trainer_state.json')} is not valid JSON ({error})"
    weights = os.path.join(folder, "model.safetensors")
    try:
        from safetensors import safe_open

        with safe_open(weights, framework="pt") as handle:
            for key in handle.keys():
                tensor = handle.get_tensor(key)
                if tensor.is_floating_point() and not tensor.isfinite().all():
                    return f"{weights} holds non-finite values in {key} (the run had diverged when it was saved)"
    except Exception as error:  # safetensors raises its own error types for a damaged header
        return f"{weights} is damaged ({type(error).__name__}: {error})"
    checksums_path = os.path.join(folder, CHECKSUMS_NAME)
    if os.path.isfile(checksums_path):
        try:
            with open(checksums_path, encoding="utf-8") as handle:
                recorded = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            return f"{checksums_path} is not valid JSON ({error})"
        for name, digest in recorded.items():
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                return f"{path} is missing (recorded in {CHECKSUMS_NAME})"
            if _sha256(path) != digest:
                return f"{path} does not match its checksum in {CHECKSUMS_NAME} (damaged after saving)"
    return None


def non_finite_tensors(model) -> list[str]:
    """Names of the floating-point parameters and buffers of `model` (BatchNorm running statistics included) that
    hold NaN or inf."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, tensor in tensors if tensor.is_floating_point() and not tensor.isfinite().all()]


def check_checkpoint_matches_model(folder: str, model) -> None:
    """Refuse, before anything is written, to resume `model` from a checkpoint of another architecture (other
    `--config_overrides`, another model type): names the first differing weights."""
    from safetensors import safe_open

    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    with safe_open(os.path.join(folder, "model.safetensors"), framework="pt") as handle:
        saved = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    different = sorted(name for name in set(expected) & set(saved) if expected[name] != saved[name])
    if missing or unexpected or different:
        details = []
        if different:
            name = different[0]
            details.append(f"{len(different)} of other shape, e.g. {name} {saved[name]} vs {expected[name]}")
        if missing:
            details.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        raise ValueError(
            f"--resume_from_checkpoint {folder} holds a model of another architecture than the one these flags build "
            f"({'; '.join(details)}). Resume with the flags of that run (its run_args.json), or start a new run."
        )


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-*` of `output_dir` that can be resumed from (`run_folder.checkpoint_problem`: every file
    needed is there and parses, recorded checksums match). A damaged or half-written one is skipped with a warning
    naming the bad file, and the next older one is tried; None when there is no checkpoint at all. Raises
    `ValueError` listing every checkpoint's problem when checkpoints exist but none is good."""
    if not os.path.isdir(output_dir):
        return None
    folders = [
        name
        for name in os.listdir(output_dir)
        if name.startswith("checkpoint-") and name[11:].isdigit() and os.path.isdir(os.path.join(output_dir, name))
    ]
    problems = []
    for name in sorted(folders, key=lambda name: int(name[11:]), reverse=True):
        folder = os.path.join(output_dir, name)
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        problems.append(problem)
        logger.warning(f"{folder} cannot be resumed from: {problem}; trying an older checkpoint.")
    if problems:
        raise ValueError(
            f"no checkpoint in {output_dir} can be resumed from:\n  " + "\n  ".join(problems) + "\nStart a new run "
            "(--overwrite_output_dir true) or restore a checkpoint."
        )
    return None


class ChecksumCallback(transformers.TrainerCallback):
    """Records the checksums of every checkpoint right after the Trainer saved it (the main process only)."""

    def on_save(self, args, state, control, model=None, **kwargs):
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        bad = non_finite_tensors(model) if model is not None else []
        if bad:  # the loss guard watches the loss only: a diverged BatchNorm statistic shows here
            raise NonFiniteLossError(
                f"step {state.global_step}: the model's state holds NaN/inf in {', '.join(bad[:5])}"
                f"{' …' if len(bad) > 5 else ''}; {folder} is not resumable. Lower the learning rate or check the data."
            )
        if state.is_world_process_zero and os.path.isdir(folder):
            write_checksums(folder)
        return control


def whole_run_train_loss(trainer, checkpoint: str, session_loss: float) -> float:
    """After a resume, the Trainer's `train_loss` averages only the steps of this session; this is the mean over every
    step of the run: the logged losses up to the checkpoint (each the mean of its logging interval) plus this
    session's steps. When the logs do not reach the checkpoint's step, the session's value is kept, with a warning."""
    with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as handle:
        initial_step = int(json.load(handle)["global_step"])
    total, previous = 0.0, 0
    for entry in sorted(trainer.state.log_history, key=lambda entry: entry.get("step", 0)):
        if "loss" in entry and entry.get("step", 0) <= initial_step:
            total += float(entry["loss"]) * (entry["step"] - previous)
            previous = entry["step"]
    global_step = trainer.state.global_step
    if previous != initial_step or global_step <= 0:
        logger.warning(
            f"train_loss averages only the {global_step - initial_step} steps after the resume: the logs of the run "
            f"stop at step {previous}, before the checkpoint's step {initial_step}."
        )
        return session_loss
    return (total + session_loss * (global_step - initial_step)) / global_step
