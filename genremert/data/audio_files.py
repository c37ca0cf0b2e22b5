"""Audio files of the song datasets: up-front checks, the decoded-song cache, and lazy fixed-length slicing.

Decoding, resampling and slicing themselves are the rules of `audio_genremert` (shared with the published pipeline);
this module applies them to whole datasets: :func:`validate_audio_files` checks every file before training,
:func:`fill_cache` fills the on-disk cache of decoded songs (:mod:`.audio_cache`, whose :func:`load_audio` reads it),
and :func:`slice_songs` turns a song dataset into a slice dataset decoded when a row is read.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Union

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

from .audio_cache import is_disk_full, load_audio, write_cache_file  # noqa: F401 - the cache's names, used from here


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
    Entries already there get the full check of :func:`load_audio` (the SHA-256 of every sample against the marker
    written with the entry), so damage since they were written is repaired here, once per run, and the reads of
    training only need the cheap check.
    """
    paths = sorted(
        {_audio_path(cell, i) for split in _as_splits(songs).values() for i, cell in enumerate(split["audio"])}
    )

    def decode(path: str) -> Optional[BadAudioFile]:
        try:
            load_audio(path, sampling_rate, cache_dir, full_check=True)
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
                # Lossy streams (Vorbis, MP3) often decode a few ms fewer frames than their header announces (encoder
                # padding; an MP3 without a gapless tag only has an estimated length): accepted without a word here.
                # Decoding the song says it, by `decode_audio`'s rule, when more is missing; a warning here would come
                # from a worker thread of `validate_audio_files` (its location: concurrent/futures/thread.py).
                tolerated = position == frames - block and shortfall < max(MAX_DECODE_SHORTFALL_FRAMES, frames // 100)
                if shortfall > 0 and not tolerated:
                    return (
                        f"truncated: read {data.shape[0]} of {block} frames at frame {position} "
                        f"(header says {frames} frames)"
                    )
                if not np.isfinite(data).all():
                    return f"non-finite samples (NaN or inf) near frame {position}"
                if data.size:  # the end probe of an MP3 whose estimated length overshoots by a block reads nothing
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


# Memory-mapped cache entries a slice decoder keeps open per process: every song of a usual dataset (GTZAN 1,000,
# artist20 1,413), so a shuffled epoch opens each entry once; a map costs address space, not memory, and this stays
# far below Linux's default limit of 65,530 maps per process.
MAPPED_SONGS = 8192
DECODED_SONGS = 2  # decoded songs kept in memory without a cache (whole songs: this one costs memory)


class _SliceDecoder:
    """The on-the-fly transform of a slice table: (song_index, start) rows → input_values.

    Picklable (DataLoader workers get a copy, with empty memos). Without `cache_dir` each process keeps its last
    two decoded songs, so reading the slices of a song in order decodes it once. With `cache_dir` the songs are
    memory-mapped from the on-disk cache, and each process keeps up to `MAPPED_SONGS` entries open (least recently
    used first out): a shuffled epoch checks and maps each entry once, as an ordered one does. A song with band noise
    is a decoded copy and is kept with the decoded songs.
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
        # song index → (samples, file key, noise key), least recently used first
        self._mapped: OrderedDict[int, tuple] = OrderedDict()
        self._decoded: OrderedDict[int, tuple] = OrderedDict()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_mapped"], state["_decoded"] = OrderedDict(), OrderedDict()
        return state

    def _song(self, song_index: int) -> tuple:
        """`(samples, file key, noise key)` of a song, from a memo or loaded (and memoised)."""
        for memo in (self._mapped, self._decoded):
            if song_index in memo:
                memo.move_to_end(song_index)
                return memo[song_index]
        path = self.paths[song_index]
        noisy = self.noise is not None and self.noisy[song_index]
        samples = load_audio(path, self.sampling_rate, self.cache_dir)
        if noisy:
            samples = self.noise.apply(samples, self.sampling_rate, path)
        song = (samples, self._file_key(path), repr(self.noise) if noisy else "")
        memo, size = (
            (self._mapped, MAPPED_SONGS) if self.cache_dir is not None and not noisy else (self._decoded, DECODED_SONGS)
        )
        while len(memo) >= size:
            memo.popitem(last=False)
        memo[song_index] = song
        return song

    def __call__(self, batch: Dict[str, list]) -> Dict[str, list]:
        values, keys = [], []
        for song_index, start in zip(batch["song_index"], batch["start"]):
            samples, file_key, noise_key = self._song(int(song_index))
            # A copy (a memory-mapped cache entry is read-only); a song shorter than one slice is zero-padded.
            values.append(cut_slices(samples, [start], self.slice_samples)[0])
            # What identifies a slice's audio (the backbone cache's key): the file, the slice and any noise.
            key = f"{file_key}|{int(start)}|{self.slice_samples}|{self.sampling_rate}|{noise_key}"
            keys.append(hashlib.sha1(key.encode()).hexdigest())
        return {
            "input_values": values,
            "label": list(batch["label"]),
            "song_id": list(batch["song_id"]),
            "slice_key": keys,
        }

    @staticmethod
    def _file_key(path: str) -> str:
        """The file part of the slice keys: path, size and modification time when the song was loaded (its samples
        are of that version of the file)."""
        stat = os.stat(path)
        return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


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
