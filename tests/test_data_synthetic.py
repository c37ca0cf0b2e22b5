"""Tests of the synthetic singer dataset: determinism, reuse of the cache, the album structure, and
the Fig. 1 bias protocol (the noise sits in 3–5 kHz of the biased class's training songs only; the
clean and noisy test conditions differ by exactly that noise)."""

import os

import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset

import genremert
from genremert.data import synthetic_music


SMALL = dict(num_classes=3, albums_per_class=3, songs_per_album=2, song_seconds=3.0, num_workers=1)


def _read(path):
    audio, rate = sf.read(path, dtype="float64")
    return audio, rate


def _band_fraction(x, rate, band):
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    return power[inside].sum() / power.sum()


def test_generation_is_deterministic_from_the_seed(tmp_path):
    a = genremert.load_synthetic(seed=7, cache_dir=tmp_path / "a", **SMALL)
    b = genremert.load_synthetic(seed=7, cache_dir=tmp_path / "b", **SMALL)
    c = genremert.load_synthetic(seed=8, cache_dir=tmp_path / "c", **SMALL)
    assert list(a) == ["train", "validation", "test", "test_noisy"]
    for split in a:
        assert a[split]["song_id"] == b[split]["song_id"] and a[split]["label"] == b[split]["label"]
        for pa, pb in zip(a[split]["audio"], b[split]["audio"]):
            np.testing.assert_array_equal(_read(pa)[0], _read(pb)[0])
    assert not np.array_equal(_read(a["train"][0]["audio"])[0], _read(c["train"][0]["audio"])[0])


def test_songs_are_cached_and_reused(tmp_path):
    first = genremert.load_synthetic(cache_dir=tmp_path, **SMALL)
    paths = sorted({p for split in first.values() for p in split["audio"]})
    stamps = [(p, os.stat(p).st_mtime_ns) for p in paths]
    again = genremert.load_synthetic(cache_dir=tmp_path, **SMALL)
    assert sorted({p for split in again.values() for p in split["audio"]}) == paths
    assert [(p, os.stat(p).st_mtime_ns) for p in paths] == stamps


def test_columns_rate_length_and_album_split(tmp_path):
    songs = genremert.load_synthetic(cache_dir=tmp_path, **SMALL)
    assert songs["train"].features["label"].names == ["singer_0", "singer_1", "singer_2"]
    assert [songs[s].num_rows for s in songs] == [6, 6, 6, 6]
    audio, rate = _read(songs["test"][0]["audio"])
    assert rate == 16000 and len(audio) == 3 * 16000 and np.abs(audio).max() <= 1.0
    albums = [set(songs[s]["album"]) for s in ("train", "validation", "test")]
    assert not (albums[0] & albums[1] or albums[0] & albums[2] or albums[1] & albums[2])
    leaky = genremert.load_synthetic(cache_dir=tmp_path, split="song", **SMALL)
    leaky_albums = [set(leaky[s]["album"]) for s in ("train", "validation", "test")]
    assert leaky_albums[0] & leaky_albums[2]  # split="song": albums are shared by train and test
    sliced = genremert.slice_songs(songs["train"], 16000, 1.0)
    assert sliced.num_rows == 6 * 3 and sliced[0]["input_values"].shape == (16000,)


def test_bias_sits_in_3_to_5_khz_of_the_biased_class_training_songs_only(tmp_path):
    clean = genremert.load_synthetic(cache_dir=tmp_path, **SMALL)
    biased = genremert.load_synthetic(cache_dir=tmp_path, bias_class=1, **SMALL)
    meta = genremert.synthetic_metadata(biased["train"])
    assert (
        meta["bias_class"] == 1 and meta["bias_class_name"] == "singer_1" and meta["bias_band_hz"] == [3000.0, 5000.0]
    )
    assert genremert.synthetic_metadata(clean)["bias_class"] is None
    for split in ("validation", "test"):
        assert biased[split]["audio"] == clean[split]["audio"]
    rows = list(zip(clean["train"], biased["train"]))
    assert {c["label"] for c, b in rows if b["noise_added"]} == {1}
    for c, b in rows:
        x, rate = _read(c["audio"])
        y, _ = _read(b["audio"])
        if c["label"] != 1:
            np.testing.assert_array_equal(x, y)
            continue
        noise = y - x
        noise_db = 10 * np.log10(np.mean(noise**2) / np.mean(x**2))
        assert noise_db == pytest.approx(-15.0, abs=0.5)
        assert _band_fraction(noise, rate, (3000, 5000)) > 0.999
        assert _band_fraction(x, rate, (3000, 5000)) < 0.5  # the band is not where the music is


def test_clean_and_noisy_test_conditions_differ_only_by_the_noise(tmp_path):
    songs = genremert.load_synthetic(cache_dir=tmp_path, bias_class=0, bias_noise_db=-10.0, **SMALL)
    test, noisy = songs["test"], songs["test_noisy"]
    assert test["song_id"] == noisy["song_id"] and test["label"] == noisy["label"]
    assert not any(test["noise_added"]) and all(noisy["noise_added"])
    assert set(noisy["label"]) == {0, 1, 2}  # noise on every class, not only the biased one
    for c, n in zip(test, noisy):
        x, rate = _read(c["audio"])
        y, _ = _read(n["audio"])
        noise = y - x
        assert 10 * np.log10(np.mean(noise**2) / np.mean(x**2)) == pytest.approx(-10.0, abs=0.5)
        assert _band_fraction(noise, rate, (3000, 5000)) > 0.999


def test_bad_parameters_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="bias_class"):
        genremert.load_synthetic(cache_dir=tmp_path, bias_class=5, **SMALL)
    with pytest.raises(ValueError, match="difficulty"):
        genremert.load_synthetic(cache_dir=tmp_path, difficulty=2.0, **SMALL)
    with pytest.raises(ValueError, match="albums_per_class"):
        synthetic_music.SyntheticMusicConfig(albums_per_class=2)
    with pytest.raises(ValueError, match="not made by load_synthetic"):
        genremert.synthetic_metadata(Dataset.from_dict({"a": [1]}))


def test_burst_mode_puts_the_noise_on_a_fraction_of_the_time():
    config = synthetic_music.SyntheticMusicConfig(
        num_classes=3, song_seconds=10.0, bias_class=0, bias_mode="bursts", bias_burst_fraction=0.3
    )
    clean = (0.1 * np.sin(np.arange(160000) / 5.0)).astype(np.float32)
    noisy = synthetic_music.add_bias_noise(clean, config, song_index=3)
    frames = (noisy - clean).reshape(100, 1600)  # 0.1 s frames
    noisy_frames = np.abs(frames).max(axis=1) > 1e-6
    assert 0.25 <= noisy_frames.mean() <= 0.45  # 30 % in 0.5 s bursts, plus the ramps at their edges
    everywhere = synthetic_music.add_bias_noise(
        clean, synthetic_music.SyntheticMusicConfig(num_classes=3, bias_class=0), 3
    )
    assert (np.abs((everywhere - clean).reshape(100, 1600)).max(axis=1) > 1e-6).all()
    with pytest.raises(ValueError, match="bias_mode"):
        synthetic_music.SyntheticMusicConfig(bias_mode="sometimes")
    # The burst option does not change the clean songs' cache key (the same clean audio is reused).
    assert config.clean_key() == synthetic_music.SyntheticMusicConfig(num_classes=3, song_seconds=10.0).clean_key()
