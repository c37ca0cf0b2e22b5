"""The on-disk cache of decoded songs (`--audio_cache_dir`): one float32 ``.npy`` per song and rate, verified once.

An entry is written atomically (temp file + rename) with a marker beside it (``<entry>.verified``) that records what was
written and checked: its length, the file's size and modification time, the SHA-256 of every sample and of five probe
blocks. A read compares the header, size, time and probe blocks with the marker (microseconds, however long the song)
and memory-maps the entry; :func:`~genremert.data.audio_files.fill_cache`, once per run, compares every sample. The
decoding itself is `audio_genremert.decode_audio`; this module only keeps its results.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Union

import numpy as np

from audio_genremert import AudioDecodeError, decode_audio, decoded_num_samples


__all__ = ["is_disk_full", "load_audio", "write_cache_file"]


def _cache_path(cache_dir: Union[str, os.PathLike], path: str, sampling_rate: int) -> Path:
    """Cache file of (path, size, mtime, rate): a changed file gets a new entry, never a stale one."""
    stat = os.stat(path)
    key = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{sampling_rate}"
    digest = hashlib.sha1(key.encode()).hexdigest()
    return Path(cache_dir) / f"{sampling_rate}hz" / digest[:2] / f"{digest}.npy"


def load_audio(
    path: Union[str, os.PathLike],
    sampling_rate: int,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    *,
    full_check: bool = False,
) -> np.ndarray:
    """:func:`decode_audio` through an optional on-disk cache of float32 ``.npy`` files.

    With `cache_dir`, the first call decodes and writes the array atomically (temp file + rename,
    so parallel workers and interrupted runs never leave a partial entry), then a marker beside it
    (``<entry>.verified``: length, size and modification time of the file, SHA-256 of the samples
    and of five probe blocks). The decoded song was checked (finite, the header's length) before it
    was written, so a later call only checks that the entry is still what was written — its header,
    size and time and probe blocks against the marker, microseconds — and memory-maps it (reading a
    slice then touches only that slice). `full_check=True` (what :func:`fill_cache` does once per
    run) compares the SHA-256 of every sample instead. An entry that fails (unreadable, not float32,
    another length, replaced or changed since it was verified; an entry without a marker, from an
    older version, is checked for its length and NaN/inf once and then marked) is a cache miss with
    a warning: the song is decoded again (a bad source file then raises :class:`AudioDecodeError`
    naming it) and the entry rewritten.
    """
    path = os.fspath(path)
    if cache_dir is None:
        return decode_audio(path, sampling_rate)
    try:
        cached = _cache_path(cache_dir, path, sampling_rate)
    except OSError as error:
        raise AudioDecodeError(f"{path}: cannot stat: {error}") from error
    entry = _open_cache_entry(cached, path, sampling_rate, full_check)
    if entry is not None:
        return entry
    audio = decode_audio(path, sampling_rate)
    write_cache_file(cached, lambda handle: np.save(handle, audio), "--audio_cache_dir", cache_dir, ".tmp.npy")
    _write_marker(cached, audio, cache_dir)
    return audio


# Samples of each of the five probe blocks (start, end, 3 inside) whose hash the cheap check of an entry compares.
MARKER_PROBE_SAMPLES = 1024


def _marker_path(cached: Path) -> Path:
    return cached.with_suffix(".verified")


def _probe_digest(samples: np.ndarray) -> str:
    """SHA-256 of the length and five blocks of `samples` (start, end, 1/4, 1/2, 3/4): what a replaced or rewritten
    entry almost surely changes, read in microseconds from a memory map."""
    length = len(samples)
    block = min(MARKER_PROBE_SAMPLES, length)
    digest = hashlib.sha256(str(length).encode())
    for start in sorted({0, length - block, *(int(length * q) - block // 2 for q in (0.25, 0.5, 0.75))}):
        start = min(max(0, start), length - block)
        digest.update(np.ascontiguousarray(samples[start : start + block]).tobytes())
    return digest.hexdigest()


def _marker(cached: Path, samples: np.ndarray) -> dict:
    """What an entry held when it was verified: its length, file size and modification time, the SHA-256 of all its
    samples and of its probe blocks."""
    stat = os.stat(cached)
    return {
        "samples": int(len(samples)),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": hashlib.sha256(np.ascontiguousarray(samples)).hexdigest(),
        "probe_sha256": _probe_digest(samples),
    }


def _write_marker(cached: Path, samples: np.ndarray, cache_dir: Union[str, os.PathLike]) -> None:
    marker = json.dumps(_marker(cached, samples)).encode()
    write_cache_file(_marker_path(cached), lambda handle: handle.write(marker), "--audio_cache_dir", cache_dir)


def _read_marker(cached: Path) -> Optional[dict]:
    """The entry's marker, or None when it is missing or unreadable (the entry then gets the full check)."""
    try:
        marker = json.loads(_marker_path(cached).read_bytes())
    except (OSError, ValueError):
        return None
    fields = ("samples", "size", "mtime_ns", "sha256", "probe_sha256")
    return marker if isinstance(marker, dict) and all(field in marker for field in fields) else None


def _open_cache_entry(cached: Path, path: str, sampling_rate: int, full_check: bool) -> Optional[np.ndarray]:
    """The memory-mapped entry `cached` of `path` when it is what was verified, else None (a cache miss; a damaged
    entry is named in a warning). See :func:`load_audio` for the checks."""
    if not cached.exists():
        return None
    try:
        entry = np.load(cached, mmap_mode="r", allow_pickle=False)
        stat = os.stat(cached)
    except Exception as error:  # empty, truncated or not an .npy file: a cache miss
        warnings.warn(f"{cached}: unreadable cache entry of {path} ({type(error).__name__}); decoding again.")
        return None
    marker = _read_marker(cached)
    if entry.dtype != np.float32 or entry.ndim != 1:
        problem = f"a {entry.dtype} array of shape {entry.shape}, expected float32 samples"
    elif marker is None:  # written before markers, or the marker was lost: the full check, once
        expected = decoded_num_samples(path, sampling_rate)  # None: a format only ffmpeg reads, no header length
        if expected in (None, entry.shape[0]) and np.isfinite(entry).all():
            _mark_verified(cached, entry)
            return entry
        problem = "wrong length or non-finite"
    elif entry.shape[0] != marker["samples"]:
        problem = f"{entry.shape[0]} samples, {marker['samples']} when it was written"
    elif (
        not full_check
        and (stat.st_size, stat.st_mtime_ns) == (marker["size"], marker["mtime_ns"])
        and _probe_digest(entry) == marker["probe_sha256"]
    ):
        return entry
    elif hashlib.sha256(entry).hexdigest() == marker["sha256"]:
        if (stat.st_size, stat.st_mtime_ns) != (marker["size"], marker["mtime_ns"]):
            _mark_verified(cached, entry)  # the same samples in a copied or touched file
        return entry
    else:
        problem = "its samples changed since it was written"
    warnings.warn(f"{cached}: damaged cache entry of {path} ({problem}); decoding again.")
    return None


def _mark_verified(cached: Path, entry: np.ndarray) -> None:
    """Write the marker of an entry just verified in full; a read-only cache stays usable (it is then fully checked
    once per process that opens it)."""
    try:
        _write_marker(cached, entry, cached.parent)
    except OSError:
        pass


def is_disk_full(error: OSError) -> bool:
    """Whether `error` is what a full disk (or an exhausted quota) raises: ENOSPC / EDQUOT from the system, or the
    short write numpy's `ndarray.tofile` reports as "<n> requested and <m> written"."""
    return (
        error.errno in (errno.ENOSPC, errno.EDQUOT)
        or re.search(r"\d+ requested and \d+ written", str(error)) is not None
    )


def write_cache_file(
    path: Path,
    write: Callable[[BinaryIO], None],
    flag: str,
    cache_dir: Union[str, os.PathLike],
    suffix: str = ".tmp",
) -> None:
    """Write a cache file atomically: `write(handle)` fills a temporary file in `path`'s folder, which is then renamed
    to `path` (parallel workers and interrupted runs never leave a partial entry). The temporary file never stays
    behind; a full disk raises an OSError (ENOSPC) naming `path` and the cache's `flag` and `cache_dir`."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=suffix)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    except OSError as error:
        if is_disk_full(error):
            raise OSError(
                errno.ENOSPC,
                f"disk full while writing {path} in {flag} {os.fspath(cache_dir)} ({error}); free space on that disk "
                f"or point {flag} at a folder on a disk with room.",
            ) from error
        raise
    finally:
        if temporary is not None and os.path.lexists(temporary):
            os.unlink(temporary)
