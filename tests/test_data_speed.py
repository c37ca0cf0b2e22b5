"""The data path's speed features (issue #23), held to what they replace: the one float32 mix-down of every path, the
integer PCM read, and the audio cache verified once when written (marker beside the entry, cheap check on read,
full check at fill) with an open-entry memo per process. Timings are in benchmarks/benchmark_data.py, not here."""

import hashlib
import json
import os
import warnings

import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset

import audio_genremert
from audio_genremert import average_channels, decode_audio, resample, stream_audio
from genremert.data import audio_cache, audio_files
from pipeline_genremert import as_float_waveform, mix_down


EPS32 = float(np.finfo(np.float32).eps)


def signal(shape, seed: int, dtype=np.float32) -> np.ndarray:
    """Noise in [-1, 1) of `shape`, as `dtype` (integer dtypes at their full scale)."""
    values = np.random.default_rng(seed).uniform(-1, 1, shape)
    if np.issubdtype(dtype, np.integer):
        return np.round(values * (np.iinfo(dtype).max - 1)).astype(dtype)
    return values.astype(dtype)


def mixdown_tolerance(audio: np.ndarray, channels: int) -> float:
    """How far a float32 mix-down may be from the float64 mean: each of the `channels - 1` float32 additions and the
    division round by at most half an ulp of a value at most `channels × peak`, i.e. < `channels × eps × peak` after
    dividing by `channels` (observed: ~0.4 eps × peak)."""
    return channels * EPS32 * float(np.abs(audio.astype(np.float64)).max())


# ----------------------------------------------------------------------------------------------------------------------
# One mix-down, equal to the old ones
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.int32])
@pytest.mark.parametrize("channels", [1, 2, 3, 6, 8])
@pytest.mark.parametrize("channel_axis", [0, 1])
def test_average_channels_is_the_old_mean_to_float32_rounding(dtype, channels, channel_axis):
    shape = (channels, 4001) if channel_axis == 0 else (4001, channels)
    audio = signal(shape, seed=channels, dtype=dtype)
    mixed = average_channels(audio, channel_axis)
    assert mixed.dtype == np.float32 and mixed.shape == (4001,)
    # The old in-memory path of the pipeline: the float64 mean, cast to float32.
    old_pipeline = audio.mean(axis=channel_axis, dtype=np.float64).astype(np.float32)
    np.testing.assert_allclose(mixed, old_pipeline, rtol=0, atol=mixdown_tolerance(audio, channels))
    if dtype == np.float32:  # the old decode path: numpy's float32 mean
        np.testing.assert_allclose(
            mixed, audio.mean(axis=channel_axis), rtol=0, atol=mixdown_tolerance(audio, channels)
        )
    if channels <= 2 and dtype in (np.float32, np.int16):
        # One channel, or (a + b) / 2 with a + b rounded once and an exact halving: no rounding to differ in.
        np.testing.assert_array_equal(mixed, old_pipeline)


def test_integer_pcm_is_scaled_by_its_full_scale_exactly():
    pcm = signal((3000, 2), seed=1, dtype=np.int16)
    pcm[:2] = [[-32768, 32767], [-32768, -32768]]
    as_floats = pcm.astype(np.float32) / np.float32(2**15)  # what libsndfile's float32 read gives
    np.testing.assert_array_equal(average_channels(pcm, 1, 2.0**15), as_floats.mean(axis=1))
    np.testing.assert_array_equal(average_channels(pcm[:, :1], 1, 2.0**15), as_floats[:, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.int32])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_the_pipeline_mixes_arrays_down_as_before(dtype, layout):
    audio = signal((3, 5000) if layout == "channels_first" else (5000, 3), seed=2, dtype=dtype)
    stereo = audio[:2] if layout == "channels_first" else audio[:, :2]
    for array, channels in ((audio, 3), (stereo, 2)):
        floats = as_float_waveform(array)
        old = floats.mean(axis=0 if layout == "channels_first" else 1, dtype=np.float64).astype(np.float32)
        new = mix_down(floats)
        assert new.dtype == np.float32
        np.testing.assert_allclose(new, old, rtol=0, atol=mixdown_tolerance(floats, channels))
        if channels == 2:
            np.testing.assert_array_equal(new, old)


def old_decode(path, sampling_rate: int) -> np.ndarray:
    """decode_audio before issue #23: libsndfile's float32 read, numpy's mean of the channels, soxr, header length."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = resample(audio.mean(axis=1), rate, sampling_rate)
    target = audio_genremert.num_samples_at(sf.info(path).frames, rate, sampling_rate)
    return mono[:target] if len(mono) >= target else np.pad(mono, (0, target - len(mono)))


@pytest.mark.parametrize(
    "fmt, subtype, channels",
    [("WAV", "PCM_16", 2), ("WAV", "PCM_16", 1), ("WAV", "PCM_24", 2), ("WAV", "PCM_32", 2), ("WAV", "FLOAT", 2),
     ("FLAC", "PCM_16", 2), ("AIFF", "PCM_16", 2), ("WAV", "PCM_16", 3), ("WAV", "PCM_U8", 2)],
)  # fmt: skip
def test_decoding_gives_the_samples_it_gave_before(tmp_path, fmt, subtype, channels):
    path = tmp_path / f"song.{fmt.lower()}"
    sf.write(path, 0.8 * signal((22050, channels), seed=3), 44100, format=fmt, subtype=subtype)
    decoded, before = decode_audio(path, 24000), old_decode(path, 24000)
    if channels <= 2:  # integer reads and the float32 mix-down change no bit
        np.testing.assert_array_equal(decoded, before)
    else:  # bit-equal today; the guarantee is float32 rounding of the mix-down, x4 for the gain of soxr's filter
        np.testing.assert_allclose(decoded, before, rtol=0, atol=4 * mixdown_tolerance(before, channels))
    blocks = np.concatenate(list(stream_audio(path, 24000, block_frames=5000)))  # the pipeline's block-wise path
    np.testing.assert_array_equal(blocks, decoded)


# ----------------------------------------------------------------------------------------------------------------------
# The audio cache: verified when written, checked cheaply on read, fully at fill
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def song(tmp_path):
    path = tmp_path / "song.wav"
    sf.write(path, 0.5 * signal(16000, seed=4), 16000, subtype="PCM_16")
    return path


def cached_song(tmp_path, song):
    cache = tmp_path / "cache"
    audio = np.array(audio_files.load_audio(song, 16000, cache))
    entry = audio_cache._cache_path(cache, str(song), 16000)
    return cache, entry, audio


def rewrite_keeping_the_time(entry, samples):
    """Replace an entry's samples in place and put its modification time back: a change neither size nor time shows."""
    stat = os.stat(entry)
    np.save(entry, samples)
    os.utime(entry, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (os.stat(entry).st_size, os.stat(entry).st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_a_written_entry_has_a_marker_of_what_was_verified(tmp_path, song):
    cache, entry, audio = cached_song(tmp_path, song)
    marker = json.loads(entry.with_suffix(".verified").read_text())
    assert marker["samples"] == len(audio) == 16000
    assert (marker["size"], marker["mtime_ns"]) == (os.stat(entry).st_size, os.stat(entry).st_mtime_ns)
    assert marker["sha256"] == hashlib.sha256(audio).hexdigest()
    assert sorted(path.name for path in cache.rglob("*")) == sorted([entry.parent.name, entry.parent.parent.name,
                                                                      entry.name, entry.name[:-4] + ".verified"])  # fmt: skip


def test_a_read_checks_the_marker_cheaply(tmp_path, song, monkeypatch):
    _, entry, audio = cached_song(tmp_path, song)
    hashed = []
    real_sha256 = hashlib.sha256

    def counting_sha256(data=b""):
        hashed.append(memoryview(data).nbytes)
        return real_sha256(data)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a verified entry was decoded or its source header read")

    monkeypatch.setattr(audio_cache.hashlib, "sha256", counting_sha256)
    monkeypatch.setattr(audio_cache, "decode_audio", no_decoding)
    monkeypatch.setattr(audio_cache, "decoded_num_samples", no_decoding)
    monkeypatch.setattr(audio_cache.np, "isfinite", no_decoding)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = audio_files.load_audio(song, 16000, tmp_path / "cache")
    monkeypatch.undo()
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, audio)
    assert hashed and sum(hashed) < 64  # the hash objects start from the length; the probe blocks go in by update()


@pytest.mark.parametrize("damage", ["truncated", "replaced", "replaced_same_time", "marker_edited", "marker_torn"])
def test_damage_after_verification_is_caught_by_the_cheap_check(tmp_path, song, damage):
    _, entry, audio = cached_song(tmp_path, song)
    marker = entry.with_suffix(".verified")
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:-1000])
    elif damage == "replaced":
        np.save(entry, np.roll(audio, 1))
    elif damage == "replaced_same_time":
        rewrite_keeping_the_time(entry, -audio)
    elif damage == "marker_edited":
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "samples": 15999}))
    else:
        marker.write_text(marker.read_text()[:20])
    context = pytest.warns(UserWarning, match=r"cache entry of .*song\.wav") if damage != "marker_torn" else None
    if context is None:  # an unreadable marker: the entry gets the full check, passes it and is marked again
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            reloaded = audio_files.load_audio(song, 16000, tmp_path / "cache")
    else:
        with context:
            reloaded = audio_files.load_audio(song, 16000, tmp_path / "cache")
    np.testing.assert_array_equal(reloaded, audio)
    np.testing.assert_array_equal(np.load(entry), audio)  # rewritten (or intact)
    assert json.loads(marker.read_text())["sha256"] == hashlib.sha256(audio).hexdigest()


def test_damage_between_the_probe_blocks_is_caught_at_fill(tmp_path, song):
    cache, entry, audio = cached_song(tmp_path, song)
    damaged = audio.copy()
    damaged[3000:3010] = np.nan  # between the probe blocks at the start and at 1/4
    rewrite_keeping_the_time(entry, damaged)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        missed = audio_files.load_audio(song, 16000, cache)  # the cheap check's known blind spot
    assert np.isnan(missed).any()
    with pytest.warns(UserWarning, match=r"damaged cache entry .*its samples changed since it was written"):
        assert audio_files.fill_cache(Dataset.from_dict({"audio": [str(song)]}), 16000, cache, num_workers=1) == 1
    np.testing.assert_array_equal(np.load(entry), audio)


def test_a_changed_time_gets_the_full_check(tmp_path, song):
    cache, entry, audio = cached_song(tmp_path, song)
    damaged = audio.copy()
    damaged[3000:3010] = 0.0
    np.save(entry, damaged)
    stat = os.stat(entry)
    os.utime(entry, ns=(stat.st_atime_ns, stat.st_mtime_ns - 5 * 10**9))  # another time, whatever the clock's tick
    with pytest.warns(UserWarning, match="its samples changed since it was written"):
        reloaded = audio_files.load_audio(song, 16000, cache)
    np.testing.assert_array_equal(reloaded, audio)
    os.utime(entry, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10 * 10**9))  # the same samples, touched (or copied)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(audio_files.load_audio(song, 16000, cache), audio)
    assert json.loads(entry.with_suffix(".verified").read_text())["mtime_ns"] == os.stat(entry).st_mtime_ns


@pytest.mark.parametrize("entry_state", ["intact", "nan", "short"])
def test_an_entry_without_a_marker_is_checked_in_full_once(tmp_path, song, entry_state):
    cache, entry, audio = cached_song(tmp_path, song)
    entry.with_suffix(".verified").unlink()  # as an older version wrote its entries
    if entry_state == "nan":
        np.save(entry, np.full_like(audio, np.nan))
    elif entry_state == "short":
        np.save(entry, audio[:100])
    if entry_state == "intact":
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_array_equal(audio_files.load_audio(song, 16000, cache), audio)
    else:
        with pytest.warns(UserWarning, match="wrong length or non-finite"):
            np.testing.assert_array_equal(audio_files.load_audio(song, 16000, cache), audio)
    assert json.loads(entry.with_suffix(".verified").read_text())["sha256"] == hashlib.sha256(audio).hexdigest()


# ----------------------------------------------------------------------------------------------------------------------
# The open-entry memo of the slice decoder
# ----------------------------------------------------------------------------------------------------------------------


def song_table(tmp_path, count: int) -> Dataset:
    paths = []
    for i in range(count):
        path = tmp_path / f"s{i}.wav"
        sf.write(path, 0.5 * signal((8000, 2), seed=10 + i), 16000, subtype="PCM_16")
        paths.append(str(path))
    return Dataset.from_dict({"audio": paths, "label": [0] * count, "song_id": [f"s{i}" for i in range(count)]})


def test_shuffled_reads_from_the_cache_open_each_entry_once(tmp_path, monkeypatch):
    songs = song_table(tmp_path, 4)
    cache = tmp_path / "cache"
    audio_files.fill_cache(songs, 16000, cache, num_workers=1)
    opened = []
    real_load_audio = audio_files.load_audio
    monkeypatch.setattr(
        audio_files, "load_audio", lambda path, *a, **k: opened.append(path) or real_load_audio(path, *a, **k)
    )
    slices = audio_files.slice_songs(songs, 16000, 0.1, cache_dir=cache, num_workers=1)
    order = np.random.default_rng(0).permutation(len(slices))
    rows = [slices[int(i)] for i in order]
    assert len(rows) == 20 and sorted(opened) == sorted(songs["audio"])
    # The slice keys (the backbone cache's) are the ones of before the memo: file, slice, rate, noise.
    table = slices.with_format(None)
    for i, row in zip(order, rows):
        path, start = songs["audio"][table["song_index"][int(i)]], table["start"][int(i)]
        stat = os.stat(path)
        key = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{start}|1600|16000|"
        assert row["slice_key"] == hashlib.sha1(key.encode()).hexdigest()

    opened.clear()  # a memo bounded by count: the least recently used entry goes first
    monkeypatch.setattr(audio_files, "MAPPED_SONGS", 2)
    slices = audio_files.slice_songs(songs, 16000, 0.1, cache_dir=cache, num_workers=1)
    for i in (0, 5, 0, 10, 5, 0):  # songs 0, 1, 0, 2 (evicts 1), 1 (evicts 0), 0
        slices[i]
    assert opened == [songs["audio"][s] for s in (0, 1, 2, 1, 0)]


def test_without_a_cache_two_decoded_songs_are_kept(tmp_path, monkeypatch):
    songs = song_table(tmp_path, 3)
    opened = []
    real_load_audio = audio_files.load_audio
    monkeypatch.setattr(
        audio_files, "load_audio", lambda path, *a, **k: opened.append(path) or real_load_audio(path, *a, **k)
    )
    slices = audio_files.slice_songs(songs, 16000, 0.1, num_workers=1)
    for i in (0, 5, 0, 10, 0, 5):  # songs 0, 1, 0, 2 (evicts 1), 0, 1 (decoded again)
        slices[i]
    assert opened == [songs["audio"][s] for s in (0, 1, 2, 1)]
