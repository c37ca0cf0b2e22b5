"""Audio files of the song datasets: up-front checks, the decoded-song cache, and lazy fixed-length slicing.

Decoding, resampling and slicing themselves are the rules of `audio_genremert` (shared with the published pipeline);
this module applies them to whole datasets: :func:`validate_audio_files` checks every file before training,
:func:`load_audio` keeps decoded songs in an optional on-disk cache, and :func:`slice_songs` turns a song dataset into
a slice dataset decoded when a row is read.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import soundfile as sf
from datasets import Dataset, DatasetDict, Features, Value

from audio_genremert import (
    MAX_DECODE_SHORTFALL_FRAMES,
    AudioDecodeError,
    cut_slices,
    declared_data_shortfall,
    decode_audio,
    num_samples_at,
    open_audio_stream,
    slice_samples_of,
    slice_starts,
)


# Every file suffix libsndfile reads (its formats and their usual aliases): what the loaders list and check.
AUDIO_SUFFIXES = tuple(
    sorted(
        {f".{name.lower()}" for name in sf.available_formats() if name not in ("RAW", "MAT4", "MAT5", "HTK")}
        | {".aif", ".aifc", ".mp3", ".mp2", ".opus", ".oga"}
    )
)
SILENCE_THRESHOLD = 1e-4  # peak below -80 dBFS on every probed block counts as silent
PROBE_FRAMES = 4096  # frames read at each probe position (start, end, and 3 inside)

__all__ = [
    "AudioDecodeError",
    "BadAudioFile",
    "BadAudioFilesError",
    "audio_num_samples",
    "check_audio_file",
    "decode_audio",
    "fill_cache",
    "load_audio",
    "num_samples_at",
    "slice_songs",
    "slice_starts",
    "validate_audio_files",
]


# ============================================================================================= #
# Errors and the report of unusable files
# ============================================================================================= #


class BadAudioFilesError(ValueError):
    """Raised with ``on_bad_file="raise"``: lists every unusable file with its reason."""

    def __init__(self, dataset: str, bad_files: Sequence[BadAudioFile], summary: Optional[str] = None):
        self.bad_files = list(bad_files)
        super().__init__(summary or _format_bad_files(dataset, self.bad_files))


@dataclass(frozen=True)
class BadAudioFile:
    path: str
    reason: str


def _format_bad_files(dataset: str, bad_files: Sequence[BadAudioFile]) -> str:
    lines = [f"{dataset}: {len(bad_files)} unusable audio file(s):"]
    lines += [f"  {b.path}: {b.reason}" for b in bad_files]
    return "\n".join(lines)


def handle_bad_files(dataset: str, bad_files: Sequence[BadAudioFile], on_bad_file: str) -> None:
    if not bad_files:
        return
    if on_bad_file == "raise":
        raise BadAudioFilesError(dataset, bad_files)
    warnings.warn(_format_bad_files(dataset, bad_files) + "\nThese files are skipped.", stacklevel=3)


def check_on_bad_file(on_bad_file: str) -> None:
    if on_bad_file not in ("skip", "raise"):
        raise ValueError(f"on_bad_file must be 'skip' or 'raise', got {on_bad_file!r}")


# ============================================================================================= #
# Decoding and the on-disk cache
# ============================================================================================= #


def audio_num_samples(path: Union[str, os.PathLike], sampling_rate: int) -> int:
    """Song length at `sampling_rate` from the file header alone (no decoding)."""
    try:
        with open_audio_stream(path) as stream, sf.SoundFile(stream) as opened:  # never by path: see open_audio_stream
            frames, rate = opened.frames, opened.samplerate
    except Exception as error:
        raise AudioDecodeError(f"{os.fspath(path)}: cannot read the header: {error}") from error
    return num_samples_at(frames, rate, sampling_rate)


def _cache_path(cache_dir: Union[str, os.PathLike], path: str, sampling_rate: int) -> Path:
    """Cache file of (path, size, mtime, rate): a changed file gets a new entry, never a stale one."""
    stat = os.stat(path)
    key = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{sampling_rate}"
    digest = hashlib.sha1(key.encode()).hexdigest()
    return Path(cache_dir) / f"{sampling_rate}hz" / digest[:2] / f"{digest}.npy"


def load_audio(
    path: Union[str, os.PathLike], sampling_rate: int, cache_dir: Optional[Union[str, os.PathLike]] = None
) -> np.ndarray:
    """:func:`decode_audio` through an optional on-disk cache of float32 ``.npy`` files.

    With `cache_dir`, the first call decodes and writes the array atomically (temp file + rename,
    so parallel workers and interrupted runs never leave a partial entry); later calls, in this run
    or the next, memory-map it (reading a slice then touches only that slice). An entry that is not
    a float32 array of the length the file's header gives, or holds a NaN/inf, is a cache miss: the
    song is decoded again (a bad source file then raises :class:`AudioDecodeError` naming it) and
    the entry rewritten.
    """
    path = os.fspath(path)
    if cache_dir is None:
        return decode_audio(path, sampling_rate)
    try:
        cached = _cache_path(cache_dir, path, sampling_rate)
    except OSError as error:
        raise AudioDecodeError(f"{path}: cannot stat: {error}") from error
    if cached.exists():
        try:
            entry = np.load(cached, mmap_mode="r", allow_pickle=False)
            if (
                entry.dtype == np.float32
                and entry.shape == (audio_num_samples(path, sampling_rate),)
                and np.isfinite(entry).all()
            ):
                return entry
            warnings.warn(f"{cached}: damaged cache entry of {path} (wrong length or non-finite); decoding again.")
        except AudioDecodeError:
            raise
        except Exception as error:  # empty, truncated or not an .npy file: a cache miss
            warnings.warn(f"{cached}: unreadable cache entry of {path} ({type(error).__name__}); decoding again.")
    audio = decode_audio(path, sampling_rate)
    write_cache_file(cached, lambda handle: np.save(handle, audio), "--audio_cache_dir", cache_dir, ".tmp.npy")
    return audio


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


def fill_cache(
    songs: Union[Dataset, DatasetDict],
    sampling_rate: int,
    cache_dir: Union[str, os.PathLike],
    num_workers: Optional[int] = None,
) -> int:
    """Decode every song of `songs` into `cache_dir` in parallel (threads); returns the number of songs.

    Every sample of every song is decoded, so this is also the complete check of the data (the up-front check of the
    loaders probes five blocks per file): every song that cannot be decoded (NaN/inf or absurd amplitudes between
    the probe points, a stream damaged in the middle) is reported together, by path and reason, as
    :class:`BadAudioFilesError` before training starts. `run_classification.py --audio_cache_dir` calls it first.
    """
    paths = sorted(
        {_audio_path(cell, i) for split in _as_splits(songs).values() for i, cell in enumerate(split["audio"])}
    )

    def decode(path: str) -> Optional[BadAudioFile]:
        try:
            load_audio(path, sampling_rate, cache_dir)
        except AudioDecodeError as error:
            return BadAudioFile(path, str(error))
        return None

    with ThreadPoolExecutor(_workers(num_workers)) as pool:
        bad = [result for result in pool.map(decode, paths) if result is not None]
    if bad:
        raise BadAudioFilesError("decoding every song", bad)
    return len(paths)


def _workers(num_workers: Optional[int]) -> int:
    return max(1, num_workers if num_workers is not None else min(8, os.cpu_count() or 1))


def _as_splits(songs: Union[Dataset, DatasetDict]) -> Dict[str, Dataset]:
    return dict(songs) if isinstance(songs, DatasetDict) else {"songs": songs}


# ============================================================================================= #
# Up-front validation of audio files
# ============================================================================================= #


def check_audio_file(path: Union[str, os.PathLike]) -> Optional[str]:
    """Why `path` cannot be used, or None when it passes every cheap check.

    Checked: the file exists and is not empty; libsndfile recognises its header; it has > 0 frames;
    its header does not declare more audio data than the file holds (wav/au/aiff truncation);
    the first and the last 4096 frames can be read in full (a truncated mp3 or flac fails there);
    probed samples are finite; and not every probe (start, end and three inner positions) is
    silent (peak < 1e-4). Not checked: damage only in the middle of a compressed stream — that is
    found when the song is decoded, and :class:`AudioDecodeError` then names the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return "missing: no such file"
    if not os.path.isfile(path):
        return "not a regular file"
    if os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    try:
        with open_audio_stream(path) as stream, sf.SoundFile(stream) as f:  # never by path: see open_audio_stream
            frames = f.frames
            if frames <= 0:
                return "no audio frames in the header"
            declared = declared_data_shortfall(f.extra_info)
            if declared is not None:
                return f"truncated: the header declares {declared[0]} bytes of audio data, the file holds {declared[1]}"
            block = min(PROBE_FRAMES, frames)
            positions = sorted({0, frames - block, *(int(frames * q) - block // 2 for q in (0.25, 0.5, 0.75))})
            peak = 0.0
            for position in positions:
                position = min(max(0, position), frames - block)
                f.seek(position)
                data = f.read(block, dtype="float32", always_2d=True)
                shortfall = block - data.shape[0]
                if position == frames - block and 0 < shortfall < max(MAX_DECODE_SHORTFALL_FRAMES, frames // 100):
                    # Lossy streams (Vorbis, MP3) often decode a few ms fewer frames than their header announces.
                    warnings.warn(
                        f"{path}: the stream ends {shortfall} frames ({1000 * shortfall / f.samplerate:.1f} ms) before "
                        f"its header says ({frames} frames); accepted (encoder padding), the end is zero-padded.",
                        stacklevel=2,
                    )
                elif shortfall > 0:
                    return (
                        f"truncated: read {data.shape[0]} of {block} frames at frame {position} "
                        f"(header says {frames} frames)"
                    )
                if not np.isfinite(data).all():
                    return f"non-finite samples (NaN or inf) near frame {position}"
                peak = max(peak, float(np.abs(data).max()))
    except Exception as error:  # libsndfile: format not recognised, failed seek, ...
        message = str(error).strip() or type(error).__name__
        return f"not a readable audio file: {message}"
    if peak < SILENCE_THRESHOLD:
        return f"silent: peak {peak:.2g} < {SILENCE_THRESHOLD:g} at every probed position"
    return None


def validate_audio_files(
    paths: Iterable[Union[str, os.PathLike]], num_workers: Optional[int] = None
) -> List[BadAudioFile]:
    """Check many files in parallel (threads: libsndfile releases the GIL); unusable ones, sorted by path."""
    paths = sorted({os.fspath(p) for p in paths})
    with ThreadPoolExecutor(_workers(num_workers)) as pool:
        reasons = list(pool.map(check_audio_file, paths))
    return [BadAudioFile(p, r) for p, r in zip(paths, reasons) if r is not None]


# ============================================================================================= #
# Slicing
# ============================================================================================= #


@dataclass(frozen=True)
class BandNoise:
    """The shortcut of paper Fig. 1 on any dataset: white noise band-limited to `band_hz`, its RMS `noise_db` dB
    relative to the song's RMS, added to whole songs. Its random stream is keyed by `seed` and the song's path, so a
    song gets the same noise in every epoch, process and run."""

    band_hz: tuple = (3000.0, 5000.0)
    noise_db: float = -15.0
    seed: int = 0

    def apply(self, audio: np.ndarray, sampling_rate: int, key: str) -> np.ndarray:
        from .synthetic_music import add_band_noise

        digest = int(hashlib.sha1(f"{self.seed}|{os.path.basename(key)}".encode()).hexdigest()[:8], 16)
        return add_band_noise(
            np.asarray(audio, dtype=np.float32),
            sampling_rate,
            self.band_hz,
            self.noise_db,
            np.random.default_rng(digest),
        )


class _SliceDecoder:
    """The on-the-fly transform of a slice table: (song_index, start) rows → input_values.

    Picklable (DataLoader workers get a copy); each process keeps the last two decoded songs, so
    reading the slices of a song in order decodes it once. With `cache_dir` the decoded songs are
    memory-mapped from the on-disk cache instead.
    """

    def __init__(
        self,
        paths: Sequence[str],
        sampling_rate: int,
        slice_samples: int,
        cache_dir: Optional[str],
        noise: Optional[BandNoise] = None,
        noisy: Optional[Sequence[bool]] = None,
    ):
        self.paths = list(paths)
        self.sampling_rate = sampling_rate
        self.slice_samples = slice_samples
        self.cache_dir = cache_dir
        self.noise = noise
        self.noisy = list(noisy) if noisy is not None else [False] * len(self.paths)
        self._recent: Dict[int, np.ndarray] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_recent"] = {}
        return state

    def _song(self, song_index: int) -> np.ndarray:
        if song_index not in self._recent:
            if len(self._recent) >= 2:
                self._recent.pop(next(iter(self._recent)))
            audio = load_audio(self.paths[song_index], self.sampling_rate, self.cache_dir)
            if self.noise is not None and self.noisy[song_index]:
                audio = self.noise.apply(audio, self.sampling_rate, self.paths[song_index])
            self._recent[song_index] = audio
        return self._recent[song_index]

    def __call__(self, batch: Dict[str, list]) -> Dict[str, list]:
        values, keys = [], []
        for song_index, start in zip(batch["song_index"], batch["start"]):
            # A copy (a memory-mapped cache entry is read-only); a song shorter than one slice is zero-padded.
            values.append(cut_slices(self._song(int(song_index)), [start], self.slice_samples)[0])
            keys.append(self._slice_key(int(song_index), int(start)))
        return {
            "input_values": values,
            "label": list(batch["label"]),
            "song_id": list(batch["song_id"]),
            "slice_key": keys,
        }

    def _slice_key(self, song_index: int, start: int) -> str:
        """What identifies a slice's audio: the file (path, size, modification time), the slice and any noise."""
        path = self.paths[song_index]
        stat = os.stat(path)
        noise = repr(self.noise) if self.noise is not None and self.noisy[song_index] else ""
        key = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{start}|{self.slice_samples}|{self.sampling_rate}|{noise}"
        return hashlib.sha1(key.encode()).hexdigest()


def _audio_path(cell, row: int) -> str:
    """A file path from an ``audio`` cell: a path string, or a ``datasets.Audio(decode=False)`` dict."""
    if isinstance(cell, (str, os.PathLike)):
        return os.fspath(cell)
    if isinstance(cell, dict) and isinstance(cell.get("path"), str) and cell.get("bytes") is None:
        return cell["path"]
    raise TypeError(
        f"songs['audio'][{row}] must be a file path (str) or an undecoded Audio cell "
        f"{{'path': ..., 'bytes': None}}, got {type(cell).__name__}: decode nothing before slicing"
    )


def slice_songs(
    songs: Union[Dataset, DatasetDict],
    sampling_rate: int,
    slice_seconds: float,
    overlap_seconds: float = 0.0,
    *,
    keep_remainder: bool = False,
    short_songs: str = "pad",
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    num_workers: Optional[int] = None,
    noise: Optional[BandNoise] = None,
    noisy_songs=None,
) -> Union[Dataset, DatasetDict]:
    """Fixed-length slices of every song, decoded lazily; a ``DatasetDict`` in gives one out.

    Returns a ``Dataset`` with one row per slice, in song order then time order. Its stored columns
    are small (``song_index``, ``start``, ``label``, ``song_id``): the table is built from file
    headers, nothing is decoded. Reading a row (``ds[i]``, a DataLoader, ``Trainer``) decodes it:
    ``input_values`` (float32 ``(slice_samples,)`` mono at `sampling_rate`), ``label`` (int) and
    ``song_id`` (str, for song-level voting). The transform survives ``select``/``shuffle`` and
    DataLoader workers (``num_workers > 0`` decodes in parallel). ``ds.with_format(None)`` shows
    the table itself.

    hop = slice − overlap. The remainder of a song shorter than a slice is dropped
    (``keep_remainder=True`` adds an end-aligned last slice); a song shorter than one slice is
    zero-padded to one slice (``short_songs="pad"``) or dropped with a warning (``"drop"``).
    `cache_dir`: decoded songs are kept there as float32 ``.npy`` (keyed by path, size, mtime and
    rate) and reused by later reads and later runs. `noise` (a :class:`BandNoise`) is added to the
    songs that `noisy_songs` flags (one bool per song; for a ``DatasetDict``, a dict split → flags).
    """
    if isinstance(songs, DatasetDict):
        return DatasetDict(
            {
                name: slice_songs(
                    split,
                    sampling_rate,
                    slice_seconds,
                    overlap_seconds,
                    keep_remainder=keep_remainder,
                    short_songs=short_songs,
                    cache_dir=cache_dir,
                    num_workers=num_workers,
                    noise=noise,
                    noisy_songs=(noisy_songs or {}).get(name),
                )
                for name, split in songs.items()
            }
        )
    if not isinstance(songs, Dataset):
        raise TypeError(f"songs must be a datasets.Dataset or DatasetDict of songs, got {type(songs).__name__}")
    for column in ("audio", "label", "song_id"):
        if column not in songs.column_names:
            raise ValueError(
                f"songs has no {column!r} column (columns: {songs.column_names}); "
                f"expected a song dataset from load_gtzan / load_artist20 / load_synthetic"
            )
    if short_songs not in ("pad", "drop"):
        raise ValueError(f"short_songs must be 'pad' or 'drop', got {short_songs!r}")
    if sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be > 0, got {sampling_rate}")
    slice_samples, hop_samples = slice_samples_of(slice_seconds, overlap_seconds, sampling_rate)

    table = songs.with_format(None)
    paths = [_audio_path(cell, i) for i, cell in enumerate(table["audio"])]
    with ThreadPoolExecutor(_workers(num_workers)) as pool:
        lengths = list(pool.map(lambda p: audio_num_samples(p, sampling_rate), paths))
    song_index, starts, labels, song_ids, dropped = [], [], [], [], []
    for i, (length, label, song_id) in enumerate(zip(lengths, table["label"], table["song_id"])):
        song_starts = slice_starts(length, slice_samples, hop_samples, "end" if keep_remainder else "drop", short_songs)
        if not song_starts:
            dropped.append(f"  {song_id}: {length / sampling_rate:.2f} s < {slice_seconds} s")
        song_index += [i] * len(song_starts)
        starts += song_starts
        labels += [label] * len(song_starts)
        song_ids += [song_id] * len(song_starts)
    if dropped:
        warnings.warn(
            f"slice_songs: {len(dropped)} song(s) shorter than one slice dropped:\n" + "\n".join(dropped), stacklevel=2
        )
    features = Features(
        {
            "song_index": Value("int32"),
            "start": Value("int64"),
            "label": songs.features["label"],
            "song_id": Value("string"),
        }
    )
    slices = Dataset.from_dict(
        {"song_index": song_index, "start": starts, "label": labels, "song_id": song_ids}, features=features
    )
    slices.info.description = songs.info.description
    if noisy_songs is not None and len(noisy_songs) != len(paths):
        raise ValueError(f"noisy_songs has {len(noisy_songs)} flags for {len(paths)} songs.")
    slices.set_transform(
        _SliceDecoder(
            paths,
            sampling_rate,
            slice_samples,
            os.fspath(cache_dir) if cache_dir is not None else None,
            noise,
            noisy_songs,
        )
    )
    return slices
