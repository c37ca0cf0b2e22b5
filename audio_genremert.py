"""Audio rules shared by training, evaluation and the published pipeline: decoding, resampling, slicing, song votes.

Every genremert component that turns a recording into slices, or slice scores into a song answer, calls the functions
of this file, so the song-level figures that training writes to `all_results.json` (and the model card) are exactly
what `pipeline("audio-classification", ...)` computes from the saved folder:

- [`decode_audio`]: soundfile at the file's own rate → mean of the channels ([`average_channels`], float32) → soxr
  (`"HQ"`) to the model's rate → trimmed or zero-padded to the length the header announces. The `ffmpeg` binary is
  the fallback for formats libsndfile cannot read (m4a, aac, ...).
- [`stream_audio`] / [`stream_slices`]: the same waveform decoded and resampled block by block (soxr's streaming
  resampler is bit-identical to its one-shot one), and its slices cut as the blocks arrive: what the pipeline does
  with a file, so its memory does not grow with the recording's length.
- [`resample`]: soxr, `"HQ"` quality (also for in-memory arrays given at another rate).
- [`slice_starts`] / [`cut_slices`]: fixed-length slices every hop; the tail shorter than a hop is dropped
  (`remainder="drop"`, the papers' slicing) or covered by one end-aligned slice (`"end"`); a recording shorter than one
  slice is zero-padded to one slice.
- [`aggregate_songs`]: the song answer of slice probabilities, a majority `"vote"` (optionally only of the slices whose
  top probability exceeds a threshold chosen on validation) or the `"mean"` of the probabilities.

This file is remote code (copied next to the weights by `save_pretrained`): at import time it needs only numpy.
soundfile and soxr are imported where they are used, with an error that names the package and its pip command.
"""

import os
import re
import subprocess
from dataclasses import dataclass

import numpy as np


SONG_AGGREGATIONS = ("vote", "mean")
SLICE_REMAINDERS = ("drop", "end")
# Decoded samples beyond this amplitude are not audio (float files are expected in [-1, 1]; lossy decoders and
# resampling overshoot a little).
MAX_PLAUSIBLE_PEAK = 1000.0
RESAMPLER_QUALITY = "HQ"  # soxr quality of every resampling, in training and in the pipeline
# A stream may decode to slightly fewer frames than its header announces (encoder delay/padding of lossy formats);
# beyond this shortfall, the stream is damaged.
MAX_DECODE_SHORTFALL_FRAMES = 4096
# Frames of a file that `stream_audio` reads at a time (1.5 s at 44.1 kHz: 1 MiB of float32 stereo).
DECODE_BLOCK_FRAMES = 1 << 16
# Integer PCM read as integers and scaled in `average_channels`: libsndfile's own conversion to float32 multiplies by
# the same power of two (so the samples are identical) but is 3-6x slower than the read itself (16-bit wav).
PCM_INTEGER_READS = {"PCM_16": ("int16", 2.0**15), "PCM_24": ("int32", 2.0**31), "PCM_32": ("int32", 2.0**31)}


class AudioDecodeError(ValueError):
    """A file (or bytes) that cannot be decoded to usable audio; the message names the file and the reason."""


def require(package: str, pip_name: str | None = None, purpose: str = "decoding audio"):
    """Import an optional package where it is used; a missing one is an `ImportError` naming the pip command."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs the `{package}` package, which is not installed: `pip install {pip_name or package}`."
        ) from error


def num_samples_at(num_frames: int, source_rate: int, target_rate: int) -> int:
    """Length in samples at `target_rate` of `num_frames` frames at `source_rate` (rounded down)."""
    return (int(num_frames) * int(target_rate)) // int(source_rate)


def resample(waveform: np.ndarray, orig_sampling_rate: int, target_sampling_rate: int) -> np.ndarray:
    """Resample a mono float waveform `(samples,)` with soxr (`"HQ"`); returns float32."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if int(orig_sampling_rate) == int(target_sampling_rate):
        return waveform
    soxr = require("soxr", purpose="resampling audio")
    return np.asarray(
        soxr.resample(waveform, int(orig_sampling_rate), int(target_sampling_rate), quality=RESAMPLER_QUALITY),
        dtype=np.float32,
    )


def _source_name(source) -> str:
    return "audio bytes" if isinstance(source, (bytes, bytearray)) else str(os.fspath(source))


def _decode_with_ffmpeg(source, sampling_rate: int, name: str) -> np.ndarray:
    """Decode a path or bytes with the `ffmpeg` binary (mono, `sampling_rate`, float32), for formats libsndfile cannot
    read."""
    payload = bytes(source) if isinstance(source, (bytes, bytearray)) else None
    input_arg = "pipe:0" if payload is not None else os.fspath(source)
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", input_arg]
    command += ["-ac", "1", "-ar", str(sampling_rate), "-f", "f32le", "pipe:1"]
    try:
        completed = subprocess.run(
            command, input=payload, stdin=None if payload is not None else subprocess.DEVNULL, capture_output=True
        )
    except FileNotFoundError as error:
        raise AudioDecodeError(
            f"{name}: not readable as audio. If it is audio in a format libsndfile does not read (m4a, aac, wma, ...), "
            "install the `ffmpeg` binary (e.g. `apt-get install ffmpeg`); otherwise the file is not audio or is "
            "damaged."
        ) from error
    waveform = np.frombuffer(completed.stdout, dtype=np.float32)
    if completed.returncode != 0 or waveform.size == 0:
        message = completed.stderr.decode(errors="replace").strip().splitlines()
        raise AudioDecodeError(f"{name}: cannot decode: {message[-1] if message else 'no audio samples decoded'}")
    return waveform.copy()


# libsndfile's description of a wav/aiff/au data chunk shorter than its header declares: "data : 123 (should be 456)".
TRUNCATED_DATA_CHUNK = re.compile(r"^\s*(data[^:\n]*?)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.IGNORECASE | re.MULTILINE)


def declared_data_shortfall(extra_info: str | None) -> tuple[int, int] | None:
    """`(declared bytes, bytes in the file)` when libsndfile's `extra_info` says the data chunk is truncated, else None.
    A declared size of 0 or 0xFFFFFFFF is a streaming header (ffmpeg writing to a pipe), not truncation."""
    match = TRUNCATED_DATA_CHUNK.search(extra_info or "")
    if not match or int(match.group(2)) in (0, 0xFFFFFFFF, 0xFFFFFFFF - 8):
        return None
    return int(match.group(2)), int(match.group(3))


def open_audio_stream(source):
    """A binary stream of a path or bytes, for `soundfile.SoundFile`. Files are opened here, never by path in
    libsndfile: given a path, libsndfile also looks for a macOS resource fork `._<name>` beside the file, and an
    AppleDouble file there (left by copies through exFAT/SMB from a Mac) makes it reject an intact MP3."""
    import io

    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(bytes(source))
    return open(os.fspath(source), "rb")  # noqa: SIM115 - closed with the SoundFile that reads it


def _check_source(source, name: str) -> None:
    """Refuse empty bytes, a directory and a missing file, naming them."""
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioDecodeError(f"{name}: empty: there is nothing to decode")
    elif os.path.isdir(source):
        raise AudioDecodeError(f"{name}: is a directory, expected an audio file")
    elif not os.path.isfile(source):
        raise AudioDecodeError(f"{name}: no such file")


def _open_soundfile(soundfile, stream, source, name: str):
    """`(soundfile.SoundFile, None)` reading `stream`, or `(None, error)` when libsndfile cannot read it (a format for
    ffmpeg, or not audio); an empty file is an [`AudioDecodeError`]."""
    try:
        return soundfile.SoundFile(stream), None
    except Exception as error:
        if isinstance(source, (str, os.PathLike)) and os.path.getsize(source) == 0:
            raise AudioDecodeError(f"{name}: empty file (0 bytes)") from error
        return None, error


def _warn_declared_truncation(extra_info: str | None, name: str) -> None:
    """wav/aiff/au: a warning when the header declares more data than the file holds."""
    declared = declared_data_shortfall(extra_info)
    if declared is not None:
        import warnings

        warnings.warn(
            f"{name}: truncated: the header declares {declared[0]} bytes of audio data, the file holds "
            f"{declared[1]}; decoding what is there.",
            stacklevel=3,
        )


def _estimated_mp3_length(stream) -> bool:
    """Whether `stream` looks like an MP3 whose length libsndfile can only estimate: no Xing/Info (LAME) or VBRI tag
    in its first frame, the tags that hold an exact frame count. Without one, mpg123 estimates the length from the
    file's size and overshoots by the encoder delay and padding, and at 22.05 / 44.1 kHz (frames of two sizes) by
    about 0.5 % more (ffmpeg `-write_xing 0` files: 240–360 frames at 8–48 kHz; 465 frames in 1 s and 6,463 in 30 s
    at 44.1 kHz): frames that never existed. Reads the first 64 KiB and puts the stream back where it was."""
    position = stream.tell()
    head = stream.read(1 << 16)
    stream.seek(position)
    start = 0
    if head[:3] == b"ID3" and len(head) >= 10:  # an ID3v2 tag first: its size is 4 syncsafe bytes
        start = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | head[9] & 0x7F)
    first = head[start : start + 200]  # the tags sit 13–36 bytes into the first frame
    is_mpeg_frame = len(first) >= 2 and first[0] == 0xFF and first[1] & 0xE0 == 0xE0
    return is_mpeg_frame and not any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


def _check_decoded_frames(
    decoded_frames: int, header_frames: int, source_rate: int, name: str, estimated_mp3_length: bool = False
) -> None:
    """Refuse a stream with no frames or much shorter than its header (damaged); warn when it ends more than 10 ms
    early (the end is zero-padded), or for an MP3 whose length is an estimate ([`_estimated_mp3_length`]), more than
    52 ms + 0.67 % early."""
    if decoded_frames == 0:
        raise AudioDecodeError(f"{name}: cannot decode: no audio frames")
    shortfall = header_frames - decoded_frames
    if shortfall > max(MAX_DECODE_SHORTFALL_FRAMES, header_frames // 100):
        raise AudioDecodeError(
            f"{name}: decoded {decoded_frames} frames, the header announces {header_frames} (damaged or truncated "
            "stream)"
        )
    tolerated = source_rate // 100  # encoder padding (10 ms)
    if estimated_mp3_length:  # two MP3 frames of 1152 samples, and the estimate's error
        tolerated = max(tolerated, 2 * 1152 + header_frames // 150)
    if shortfall > tolerated:  # the end is missing
        import warnings

        warnings.warn(
            f"{name}: the stream ends {shortfall} frames ({1000 * shortfall / source_rate:.0f} ms) before its header "
            "says; the missing end is zero-padded.",
            stacklevel=3,
        )


def _read_frames(opened, frames: int = -1) -> tuple[np.ndarray, float]:
    """`(samples (frames, channels), full scale)` of the next `frames` frames (-1: the rest) of an open
    `soundfile.SoundFile`: integer PCM as integers with its full scale, everything else as float32 with 1."""
    dtype, full_scale = PCM_INTEGER_READS.get(opened.subtype, ("float32", 1.0))
    return opened.read(frames, dtype=dtype, always_2d=True), full_scale


def average_channels(audio: np.ndarray, channel_axis: int = 1, full_scale: float = 1.0) -> np.ndarray:
    """The mix-down of every genremert path: the mean of the channels of 2-D `audio`, as float32 `(frames,)`.

    Each channel is converted to float32, the channels are summed in order in float32 and the sum is divided by
    `channels × full_scale` (`full_scale`: 2**15 for int16 PCM, 2**31 for int32, 1 for float audio). For float32 input
    this is `audio.mean(axis=channel_axis)` to the bit up to 7 channels (numpy sums a short axis in order, then
    divides; from 8 channels on it pairs the terms: equal to float32 rounding). Integer PCM gives the mix-down of the
    samples libsndfile would have returned as float32, to the bit: it scales by the same power of two. One pass per
    channel and no float64 copy: `ndarray.mean` over the short axis of a long array costs ~20x more.
    """
    if audio.ndim != 2:
        raise ValueError(
            f"average_channels needs 2-D audio (frames, channels) or (channels, frames), got {audio.shape}."
        )
    channels = audio if channel_axis == 0 else audio.T  # (channels, frames): rows are views, strided for axis 1
    if channels.shape[0] == 0:
        raise ValueError(f"audio of shape {audio.shape} has no channel on axis {channel_axis}.")
    divisor = channels.shape[0] * full_scale
    if channels.shape[0] == 1 and divisor == 1 and channels.dtype == np.float32:
        return channels[0]
    total = channels[0].astype(np.float32)  # (frames,) a copy
    for channel in channels[1:]:
        np.add(total, channel, out=total, dtype=np.float32)  # the channel converted to float32 first, as astype does
    if divisor != 1:
        np.divide(total, np.float32(divisor), out=total)
    return total


def _check_samples(mono: np.ndarray, offset: int, sampling_rate: int, name: str) -> None:
    """Refuse NaN/inf samples (naming the time of the first, `offset` being the position of `mono[0]` in the
    recording) and samples far outside [-1, 1]."""
    finite = np.isfinite(mono)
    if not finite.all():
        first = offset + int(np.flatnonzero(~finite)[0])
        raise AudioDecodeError(
            f"{name}: decoded audio contains NaN or infinite values (first at {first / sampling_rate:.3f} s)"
        )
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if peak > MAX_PLAUSIBLE_PEAK:
        raise AudioDecodeError(
            f"{name}: samples reach amplitude {peak:.3g}, far outside [-1, 1]: not usable audio (a float file "
            "written without scaling?)"
        )


def decode_audio(source, sampling_rate: int, name: str | None = None) -> np.ndarray:
    """Decode a whole file (path) or file bytes to a float32 mono waveform `(samples,)` at `sampling_rate`.

    soundfile reads it at its own rate (wav, au, aiff, flac, ogg/vorbis/opus, mp3), the channels are averaged, soxr
    resamples it, and the result is trimmed or zero-padded to `num_samples_at(header frames, file rate,
    sampling_rate)`, so a header alone tells the decoded length. Formats libsndfile cannot read go through the
    `ffmpeg` binary. Raises [`AudioDecodeError`] naming the file for missing, empty, undecodable or damaged audio
    (a stream much shorter than its header) and for NaN/inf samples. [`stream_audio`] gives the same samples block by
    block.
    """
    name = name or _source_name(source)
    _check_source(source, name)
    soundfile = require("soundfile")
    with open_audio_stream(source) as stream:
        estimated_length = _estimated_mp3_length(stream)
        opened, libsndfile_error = _open_soundfile(soundfile, stream, source, name)
        if opened is None:
            mono = _decode_with_ffmpeg(source, sampling_rate, f"{name} (libsndfile: {libsndfile_error})")
            header_frames, source_rate = None, sampling_rate
        else:
            try:
                with opened:
                    header_frames, source_rate = opened.frames, opened.samplerate
                    extra_info = opened.extra_info
                    audio, full_scale = _read_frames(opened)  # (frames, channels)
            except Exception as error:  # a stream that breaks while decoding
                raise AudioDecodeError(f"{name}: cannot decode: {error}") from error
            _check_decoded_frames(audio.shape[0], header_frames, source_rate, name, estimated_length)
            _warn_declared_truncation(extra_info, name)
            mono = average_channels(audio, 1, full_scale)  # (frames,) float32
    mono = resample(mono, source_rate, sampling_rate)
    if header_frames is not None:
        target = num_samples_at(header_frames, source_rate, sampling_rate)
        mono = mono[:target] if len(mono) >= target else np.pad(mono, (0, target - len(mono)))
    _check_samples(mono, 0, sampling_rate, name)
    return np.ascontiguousarray(mono, dtype=np.float32)


def decoded_num_samples(source, sampling_rate: int, name: str | None = None) -> int | None:
    """The length in samples at `sampling_rate` of what [`decode_audio`] and [`stream_audio`] give for a path or file
    bytes, read from the header alone: `num_samples_at(header frames, file rate, sampling_rate)`; None for a format
    only the `ffmpeg` binary reads (its length is known once decoded). Raises [`AudioDecodeError`] naming the file for
    a missing, empty or frameless file."""
    name = name or _source_name(source)
    _check_source(source, name)
    soundfile = require("soundfile")
    with open_audio_stream(source) as stream:
        opened, _ = _open_soundfile(soundfile, stream, source, name)
        if opened is None:
            return None
        with opened:
            if opened.frames == 0:
                raise AudioDecodeError(f"{name}: cannot decode: no audio frames")
            return num_samples_at(opened.frames, opened.samplerate, sampling_rate)


def stream_audio(source, sampling_rate: int, name: str | None = None, block_frames: int = DECODE_BLOCK_FRAMES):
    """Decode a path or file bytes block by block: yields float32 mono blocks `(samples,)` at `sampling_rate` whose
    concatenation is [`decode_audio`]'s waveform, holding about `block_frames` frames of the file at a time.

    Each block of `block_frames` frames read by soundfile is mixed down and resampled by a `soxr.ResampleStream` of the
    same quality (`"HQ"`, float32), whose output is bit-identical to soxr's one-shot resampling; the blocks are
    trimmed or zero-padded to `num_samples_at(header frames, file rate, sampling_rate)`
    ([`decoded_num_samples`]). The errors and warnings are those of [`decode_audio`], each raised when decoding
    reaches it: NaN/inf and implausible samples at their block, a stream much shorter than its header at its end.
    A format only the `ffmpeg` binary reads is decoded whole and yielded as one block.
    """
    if isinstance(block_frames, bool) or not isinstance(block_frames, int) or block_frames < 1:
        raise ValueError(f"`block_frames` must be a positive integer, got {block_frames!r}.")
    name = name or _source_name(source)
    _check_source(source, name)
    soundfile = require("soundfile")
    with open_audio_stream(source) as stream:
        estimated_length = _estimated_mp3_length(stream)
        opened, libsndfile_error = _open_soundfile(soundfile, stream, source, name)
        if opened is None:
            mono = _decode_with_ffmpeg(source, sampling_rate, f"{name} (libsndfile: {libsndfile_error})")
            _check_samples(mono, 0, sampling_rate, name)
            yield mono
            return
        with opened:
            header_frames, source_rate = opened.frames, opened.samplerate
            _warn_declared_truncation(opened.extra_info, name)
            target = num_samples_at(header_frames, source_rate, sampling_rate)
            resampler = None
            if source_rate != sampling_rate:
                soxr = require("soxr", purpose="resampling audio")
                resampler = soxr.ResampleStream(
                    source_rate, sampling_rate, 1, dtype="float32", quality=RESAMPLER_QUALITY
                )
            decoded_frames = emitted = 0
            finished = False
            while not finished:
                try:
                    audio, full_scale = _read_frames(opened, block_frames)  # (frames, channels)
                except Exception as error:  # a stream that breaks while decoding
                    raise AudioDecodeError(f"{name}: cannot decode: {error}") from error
                finished = audio.shape[0] == 0
                decoded_frames += audio.shape[0]
                mono = average_channels(audio, 1, full_scale)  # (frames,) float32
                if resampler is not None:  # the last call flushes the resampler's delay line
                    mono = np.asarray(resampler.resample_chunk(mono, last=finished), dtype=np.float32)
                mono = mono[: target - emitted]
                if mono.size:
                    _check_samples(mono, emitted, sampling_rate, name)
                    yield np.ascontiguousarray(mono, dtype=np.float32)
                    emitted += mono.size
            _check_decoded_frames(decoded_frames, header_frames, source_rate, name, estimated_length)
    while emitted < target:  # the stream ended before its header says: zero-padded, as decode_audio does
        padding = min(target - emitted, block_frames)
        yield np.zeros(padding, dtype=np.float32)
        emitted += padding


def slice_samples_of(slice_seconds: float, overlap_seconds: float, sampling_rate: int) -> tuple[int, int]:
    """`(slice_samples, hop_samples)` of slices of `slice_seconds` overlapping by `overlap_seconds`."""
    slice_samples = int(round(slice_seconds * sampling_rate))
    hop_samples = slice_samples - int(round(overlap_seconds * sampling_rate))
    if slice_samples <= 0:
        raise ValueError(f"`slice_seconds` must be > 0, got {slice_seconds}.")
    if overlap_seconds < 0 or hop_samples <= 0:
        raise ValueError(
            f"`slice_overlap_seconds` must be in [0, slice_seconds={slice_seconds}), got {overlap_seconds}."
        )
    return slice_samples, hop_samples


def slice_starts(
    num_samples: int, slice_samples: int, hop_samples: int, remainder: str = "drop", short: str = "pad"
) -> list[int]:
    """Start samples of the slices of a recording of `num_samples` samples.

    Slices start at 0, hop, 2·hop, … while they fit entirely. The tail after the last full slice is dropped
    (`remainder="drop"`) or covered by one more slice aligned to the end of the recording (`"end"`). A recording
    shorter than one slice gives one slice, zero-padded by [`cut_slices`] (`short="pad"`), or none (`"drop"`).
    """
    if remainder not in SLICE_REMAINDERS:
        raise ValueError(f"`slice_remainder` must be one of {list(SLICE_REMAINDERS)}, got {remainder!r}.")
    if short not in ("pad", "drop"):
        raise ValueError(f"`short` must be 'pad' or 'drop', got {short!r}.")
    if num_samples < slice_samples:
        return [0] if short == "pad" and num_samples > 0 else []
    starts = list(range(0, num_samples - slice_samples + 1, hop_samples))
    if remainder == "end" and starts[-1] + slice_samples < num_samples:
        starts.append(num_samples - slice_samples)
    return starts


def cut_slices(waveform: np.ndarray, starts, slice_samples: int) -> np.ndarray:
    """The slices `(len(starts), slice_samples)` float32 of `waveform` (a copy), zero-padded at the end where the
    recording is shorter than one slice."""
    slices = np.zeros((len(starts), slice_samples), dtype=np.float32)
    for row, start in enumerate(starts):
        segment = waveform[start : start + slice_samples]
        slices[row, : len(segment)] = segment
    return slices


def stream_slices(blocks, slice_samples: int, hop_samples: int, remainder: str = "drop"):
    """The slices of a recording given as consecutive blocks of samples (e.g. [`stream_audio`]'s), as they fill up.

    Yields `(start, slice)` pairs, `slice` a float32 `(slice_samples,)` copy: the starts of [`slice_starts`] of the
    whole recording (its length is known when `blocks` ends: the slice aligned to the end with `remainder="end"`, or
    the zero-padded slice of a recording shorter than one slice, comes last) and the contents of [`cut_slices`].
    Holds at most the last `slice_samples` samples plus one block.
    """
    if remainder not in SLICE_REMAINDERS:
        raise ValueError(f"`slice_remainder` must be one of {list(SLICE_REMAINDERS)}, got {remainder!r}.")
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # position of buffer[0] in the recording
    total = 0  # samples received so far
    next_start = 0  # the next slice of the regular grid 0, hop, 2·hop, ...
    emitted = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 1:
            raise ValueError(f"blocks must be 1-D arrays of samples, got one of shape {block.shape}.")
        buffer = block if buffer.size == 0 else np.concatenate([buffer, block])
        total += block.size
        while next_start + slice_samples <= total:
            offset = next_start - buffer_start
            yield next_start, np.array(buffer[offset : offset + slice_samples], dtype=np.float32)
            emitted += 1
            next_start += hop_samples
        # Every later slice lies within the last `slice_samples` samples (the regular ones start after
        # total - slice_samples, the end-aligned one at it).
        keep_from = max(total - slice_samples, buffer_start)
        buffer, buffer_start = buffer[keep_from - buffer_start :], keep_from
    # The slices only the length decides: the end-aligned one, or one zero-padded slice of a short recording.
    for start in slice_starts(total, slice_samples, hop_samples, remainder)[emitted:]:
        yield start, cut_slices(buffer, [start - buffer_start], slice_samples)[0]


@dataclass
class SongAggregation:
    """Song-level answers of slice probabilities; arrays are indexed by song, songs in ascending index order."""

    song_index: np.ndarray  # (songs,) the song indices, ascending
    scores: np.ndarray  # (songs, classes) vote fractions ("vote") or mean probabilities ("mean")
    predictions: np.ndarray  # (songs,) the winning class
    votes: np.ndarray  # (songs, classes) vote counts of the voting slices ("mean": every slice's arg-max)
    num_slices: np.ndarray  # (songs,) slices of each song
    num_voting: np.ndarray  # (songs,) slices that voted (= num_slices when none passed the threshold)
    fell_back: np.ndarray  # (songs,) bool: a threshold was set and no slice passed it, so every slice voted
    summed_probabilities: np.ndarray  # (songs, classes) summed probabilities of the voting slices (the tie-break)


def aggregate_songs(
    probabilities: np.ndarray, song_index=None, aggregation: str = "vote", threshold: float | None = None
) -> SongAggregation:
    """The song answer of each song from the probabilities `(slices, classes)` of its slices.

    - `"vote"`: every slice votes for its arg-max class; with `threshold`, only slices whose top probability is
      strictly greater than it vote, and a song none of whose slices passes falls back to the votes of all of them.
      The most votes win; ties go to the highest summed probability over the voting slices, then the lowest label id.
      `scores` are the vote fractions.
    - `"mean"`: the class of highest mean probability (ties: lowest label id); `scores` are the mean probabilities.

    `song_index` `(slices,)` says which song each slice comes from (any order); `None` means one song.
    """
    if aggregation not in SONG_AGGREGATIONS:
        raise ValueError(f"`song_aggregation` must be one of {list(SONG_AGGREGATIONS)}, got {aggregation!r}.")
    if threshold is not None and not 0.0 <= threshold < 1.0:
        raise ValueError(f"the vote threshold must be in [0, 1) or None, got {threshold!r}.")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise ValueError(f"probabilities must have shape (slices, classes) with slices > 0, got {probabilities.shape}.")
    if song_index is None:
        song_index = np.zeros(probabilities.shape[0], dtype=np.int64)
    song_index = np.asarray(song_index).astype(np.int64)
    if song_index.shape != (probabilities.shape[0],):
        raise ValueError(f"song_index must have shape ({probabilities.shape[0]},), got {song_index.shape}.")

    num_classes = probabilities.shape[1]
    songs, inverse = np.unique(song_index, return_inverse=True)  # inverse: slice → song row
    num_songs = len(songs)
    slice_votes = probabilities.argmax(axis=1)  # (slices,)
    passes = np.ones(len(slice_votes), dtype=bool)
    if aggregation == "vote" and threshold is not None:
        passes = probabilities.max(axis=1) > threshold
    num_slices = np.bincount(inverse, minlength=num_songs)
    num_passing = np.bincount(inverse, weights=passes, minlength=num_songs).astype(np.int64)
    fell_back = num_passing == 0
    voting = passes | fell_back[inverse]  # (slices,) the slices whose vote counts

    votes = np.zeros((num_songs, num_classes), dtype=np.int64)
    np.add.at(votes, (inverse[voting], slice_votes[voting]), 1)
    summed = np.zeros((num_songs, num_classes), dtype=np.float64)
    np.add.at(summed, inverse[voting], probabilities[voting])
    num_voting = np.where(fell_back, num_slices, num_passing)

    if aggregation == "mean":
        scores = summed / num_slices[:, None]
        predictions = scores.argmax(axis=1)
    else:
        scores = votes / num_voting[:, None]
        # Most votes, then highest summed probability, then the lowest label id (argmax keeps the first maximum).
        is_top_vote = votes == votes.max(axis=1, keepdims=True)
        predictions = np.where(is_top_vote, summed, -np.inf).argmax(axis=1)
    return SongAggregation(
        song_index=songs,
        scores=scores,
        predictions=predictions,
        votes=votes,
        num_slices=num_slices,
        num_voting=num_voting,
        fell_back=fell_back & (aggregation == "vote") & (threshold is not None),
        summed_probabilities=summed,
    )


def song_ranking(aggregation: SongAggregation, row: int = 0) -> list[int]:
    """Label ids of one song, best first, in the order of [`aggregate_songs`]'s decision rule."""
    scores, summed = aggregation.scores[row], aggregation.summed_probabilities[row]
    return sorted(range(len(scores)), key=lambda label: (-scores[label], -summed[label], label))


__all__ = [
    "AudioDecodeError",
    "SONG_AGGREGATIONS",
    "SLICE_REMAINDERS",
    "SongAggregation",
    "aggregate_songs",
    "average_channels",
    "cut_slices",
    "decode_audio",
    "decoded_num_samples",
    "num_samples_at",
    "resample",
    "slice_samples_of",
    "slice_starts",
    "song_ranking",
    "stream_audio",
    "stream_slices",
]
