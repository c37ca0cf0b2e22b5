"""Tests of music_datasets: GTZAN and artist20 loaders on small fake trees in the real layouts,
up-front validation of bad files, vocal stems, decoding and the cache, and slicing."""

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import ClassLabel, Dataset

import audio_genremert
import genremert
from genremert.data import songs as song_table


GTZAN_RATE = 22050
CLIP_SECONDS = 0.25


def _tone(seconds, rate, seed, channels=1):
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + 0.05 * rng.standard_normal(n)
    if channels > 1:
        x = np.stack([x, 0.5 * x], axis=1)
    return x.astype(np.float32)


def write_gtzan_tree(root: Path, top="genres", seconds=CLIP_SECONDS, corrupt_jazz54=True, fmt="wav"):
    """A full 1000-clip GTZAN tree of short clips; jazz.00054 is undecodable like in common copies."""
    for g_index, genre in enumerate(genremert.GTZAN_GENRES):
        folder = root / top / genre
        folder.mkdir(parents=True)
        for i in range(100):
            path = folder / f"{genre}.{i:05d}.{fmt}"
            sf.write(
                path, _tone(seconds, GTZAN_RATE, g_index * 100 + i), GTZAN_RATE, format=fmt.upper(), subtype="PCM_16"
            )
        (folder / f"._{genre}.00000.{fmt}").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 207)  # AppleDouble
    if corrupt_jazz54:
        (root / top / "jazz" / f"jazz.00054.{fmt}").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    return root


@pytest.fixture(scope="module")
def gtzan_dir(tmp_path_factory):
    return write_gtzan_tree(tmp_path_factory.mktemp("gtzan"))


def write_artist20_tree(root: Path, artists=6, albums=6, tracks=2, seconds=0.3):
    base = root / "artist20" / "mp3s-32k"
    for a in range(artists):
        for b in range(albums):
            folder = base / f"artist_{a:02d}" / f"{1990 + b}-Album_{b}"
            folder.mkdir(parents=True)
            for t in range(tracks):
                sf.write(
                    folder / f"{t + 1:02d}-Track_{t}.mp3",
                    _tone(seconds, 16000, a * 100 + b * 10 + t),
                    16000,
                    format="MP3",
                )
    return root


@pytest.fixture(scope="module")
def artist20_dir(tmp_path_factory):
    return write_artist20_tree(tmp_path_factory.mktemp("artist20"))


def _ids(dataset):
    return list(dataset["song_id"])


# ------------------------------------------------------------------------------------------- #
# GTZAN
# ------------------------------------------------------------------------------------------- #


def test_gtzan_fault_filtered_sizes_labels_and_the_known_bad_clip(gtzan_dir):
    with pytest.warns(UserWarning) as record:
        songs = genremert.load_gtzan(gtzan_dir, split="fault_filtered")
    message = "\n".join(str(w.message) for w in record)
    assert "jazz.00054.wav" in message and "1 unusable" in message
    # 443 / 197 / 290 published; jazz.00054 is in train and is skipped.
    assert [songs[s].num_rows for s in ("train", "validation", "test")] == [442, 197, 290]
    assert isinstance(songs["train"].features["label"], ClassLabel)
    assert songs["train"].features["label"].names == list(genremert.GTZAN_GENRES)
    for split in songs.values():
        for row in split:
            genre = row["song_id"].split(".")[0]
            assert split.features["label"].int2str(row["label"]) == genre
            assert Path(row["audio"]).name == row["song_id"] + ".wav"
            assert not Path(row["audio"]).name.startswith("._")
    assert "blues.00012" in _ids(songs["test"]) and "blues.00029" in _ids(songs["train"])
    assert _ids(songs["train"]) == sorted(_ids(songs["train"]))


def test_gtzan_bad_file_can_be_an_error(gtzan_dir):
    with pytest.raises(genremert.BadAudioFilesError, match="jazz.00054.wav"):
        genremert.load_gtzan(gtzan_dir, split="fault_filtered", on_bad_file="raise")


def test_gtzan_lca_songs_split(gtzan_dir):
    with pytest.warns(UserWarning, match="jazz.00054"):
        songs = genremert.load_gtzan(gtzan_dir, split="lca_songs")
    reference_test = {
        line.strip()[:-4] for line in (song_table.SPLIT_LISTS_DIR / "gtzan" / "lca_test_songs.txt").read_text().split()
    }
    assert set(_ids(songs["test"])) == reference_test
    sets = [set(_ids(songs[s])) for s in ("train", "validation", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(len(s) for s in sets) == 999
    for genre in genremert.GTZAN_GENRES:  # 50 / 25 / 25 per genre; jazz.00054 (train) is unusable
        counts = [sum(i.startswith(genre + ".") for i in s) for s in sets]
        assert counts == ([49, 25, 25] if genre == "jazz" else [50, 25, 25])


def test_gtzan_random_split_is_seeded_and_stratified(gtzan_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = genremert.load_gtzan(gtzan_dir, split="random", seed=3)
        b = genremert.load_gtzan(gtzan_dir, split="random", seed=3)
        c = genremert.load_gtzan(gtzan_dir, split="random", seed=4)
    assert all(_ids(a[s]) == _ids(b[s]) for s in genremert.SPLITS)
    assert _ids(a["test"]) != _ids(c["test"])
    for genre in genremert.GTZAN_GENRES:
        counts = [sum(i.startswith(genre + ".") for i in _ids(a[s])) for s in genremert.SPLITS]
        lost = 1 if genre == "jazz" else 0  # jazz.00054 is unusable: it is split, then dropped
        assert sum(counts) == 100 - lost
        assert all(abs(c - e) <= lost for c, e in zip(counts, [80, 10, 10]))


@pytest.mark.parametrize("top", ["genres_original", "Data/genres_original", ""])
def test_gtzan_other_layouts_and_au_copies(tmp_path, top):
    for genre in genremert.GTZAN_GENRES:
        folder = tmp_path / top / genre
        folder.mkdir(parents=True)
        for i in (12, 13):
            sf.write(folder / f"{genre}.{i:05d}.au", _tone(0.1, GTZAN_RATE, i), GTZAN_RATE, format="AU")
    files = genremert.find_gtzan_files(tmp_path)
    assert len(files) == 20 and files["rock.00013"].endswith("rock/rock.00013.au")
    # Most listed clips are absent: refused up front, unless asked for deliberately (then reported, not fatal).
    with pytest.raises(genremert.BadAudioFilesError, match="not on disk"):
        genremert.load_gtzan(tmp_path, split="fault_filtered")
    with pytest.warns(UserWarning, match="missing"):
        songs = genremert.load_gtzan(tmp_path, split="fault_filtered", allow_missing_files=True)
    assert {"blues.00012", "blues.00013"} <= set(_ids(songs["test"]))
    present = sum(songs[s].num_rows for s in genremert.SPLITS)
    with pytest.raises(genremert.BadAudioFilesError, match=f"{930 - present} unusable") as error:
        genremert.load_gtzan(tmp_path, split="fault_filtered", on_bad_file="raise", allow_missing_files=True)
    first = error.value.bad_files[0]
    assert first.path == str(tmp_path / top / "blues" / "blues.00000.wav") and first.reason.startswith("missing")


def test_gtzan_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        genremert.load_gtzan(tmp_path / "nowhere")
    (tmp_path / "music").mkdir()
    with pytest.raises(FileNotFoundError, match=r"genres/<genre>/<genre>\.000NN\.wav"):
        genremert.load_gtzan(tmp_path)
    for genre in genremert.GTZAN_GENRES:
        (tmp_path / "genres" / genre).mkdir(parents=True)
    sf.write(tmp_path / "genres" / "blues" / "blues.00000.wav", _tone(0.1, GTZAN_RATE, 0), GTZAN_RATE)
    with pytest.raises(FileNotFoundError, match=r"genres/classical holds no clip"):
        genremert.load_gtzan(tmp_path)
    shutil.rmtree(tmp_path / "genres" / "rock")
    with pytest.raises(FileNotFoundError, match="missing under .*: rock"):
        genremert.load_gtzan(tmp_path)


def test_unknown_split_names_are_errors(gtzan_dir, artist20_dir):
    with pytest.raises(ValueError, match="unknown split 'album'.*fault_filtered, lca_songs, random"):
        genremert.load_gtzan(gtzan_dir, split="album")
    with pytest.raises(ValueError, match="unknown split 'fold6'"):
        genremert.load_artist20(artist20_dir, split="fold6")
    with pytest.raises(ValueError, match="on_bad_file"):
        genremert.load_gtzan(gtzan_dir, on_bad_file="ignore")


# ------------------------------------------------------------------------------------------- #
# Validation of bad files
# ------------------------------------------------------------------------------------------- #


def _make_bad_files(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    good = _tone(1.0, 16000, 1)
    sf.write(folder / "good.wav", good, 16000)
    sf.write(folder / "good.mp3", good, 16000, format="MP3")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("this is not audio\n" * 20)
    sf.write(folder / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(folder / "full.wav", good, 16000)
    data = (folder / "full.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    data = (folder / "good.mp3").read_bytes()
    (folder / "truncated.mp3").write_bytes(data[: len(data) // 2])
    (folder / "full.wav").unlink()
    return folder


def test_check_audio_file_reasons(tmp_path):
    folder = _make_bad_files(tmp_path)
    reasons = {p.name: genremert.check_audio_file(p) for p in sorted(folder.iterdir())}
    assert reasons["good.wav"] is None and reasons["good.mp3"] is None
    assert reasons["empty.wav"].startswith("empty file")
    assert reasons["text.wav"].startswith("not a readable audio file")
    assert reasons["silent.wav"].startswith("silent")
    assert reasons["truncated.wav"].startswith("truncated")
    assert reasons["truncated.mp3"].startswith("truncated") or reasons["truncated.mp3"].startswith("not a readable")
    assert genremert.check_audio_file(folder / "absent.wav").startswith("missing")
    bad = genremert.validate_audio_files(sorted(folder.iterdir()), num_workers=2)
    assert [b.path for b in bad] == sorted(
        str(folder / n) for n in ("empty.wav", "silent.wav", "text.wav", "truncated.mp3", "truncated.wav")
    )


def test_artist20_reports_every_bad_file_at_once_and_skips_them(tmp_path):
    root = write_artist20_tree(tmp_path, artists=2, albums=3, tracks=2)
    album = root / "artist20" / "mp3s-32k" / "artist_00" / "1990-Album_0"
    (album / "01-Track_0.mp3").write_bytes(b"")
    (album / "02-Track_1.mp3").write_text("not an mp3 at all" * 30)
    with pytest.warns(UserWarning) as record:
        songs = genremert.load_artist20(root)
    message = str(record[0].message)
    assert (
        "2 unusable" in message
        and "01-Track_0.mp3: empty file" in message
        and "02-Track_1.mp3: not a readable" in message
    )
    all_ids = [i for s in genremert.SPLITS for i in _ids(songs[s])]
    assert len(all_ids) == 2 * 3 * 2 - 2 and "artist_00/1990-Album_0/01-Track_0" not in all_ids
    with pytest.raises(genremert.BadAudioFilesError) as error:
        genremert.load_artist20(root, on_bad_file="raise")
    assert len(error.value.bad_files) == 2


def test_decoding_a_file_damaged_after_validation_names_it(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(1.0, 16000, 0), 16000)
    (tmp_path / "b.wav").write_text("garbage" * 100)
    with pytest.raises(audio_genremert.AudioDecodeError, match="b.wav"):
        audio_genremert.decode_audio(tmp_path / "b.wav", 16000)
    sf.write(tmp_path / "c.mp3", _tone(3.0, 16000, 0), 16000, format="MP3")
    data = (tmp_path / "c.mp3").read_bytes()
    (tmp_path / "c.mp3").write_bytes(data[: len(data) // 2])  # the header still announces 3 s
    with pytest.raises(
        audio_genremert.AudioDecodeError, match=r"c\.mp3: decoded \d+ frames, the header announces 48000"
    ):
        audio_genremert.decode_audio(tmp_path / "c.mp3", 16000)


# ------------------------------------------------------------------------------------------- #
# artist20
# ------------------------------------------------------------------------------------------- #


def _albums(split):
    return set(split["album"])


def test_artist20_album_split(artist20_dir):
    songs = genremert.load_artist20(artist20_dir, split="album", seed=0)
    names = songs["train"].features["label"].names
    assert names == [f"artist_{a:02d}" for a in range(6)]
    assert set(songs["train"].column_names) == {"audio", "label", "song_id", "album"}
    train, val, test = (_albums(songs[s]) for s in genremert.SPLITS)
    assert not (train & val or train & test or val & test)
    assert (len(train), len(val), len(test)) == (6 * 4, 6, 6)
    assert [songs[s].num_rows for s in genremert.SPLITS] == [48, 12, 12]
    row = songs["test"][0]
    artist, album, track = row["song_id"].split("/")
    assert row["album"] == f"{artist}/{album}" and names[row["label"]] == artist
    assert row["audio"].endswith(f"mp3s-32k/{artist}/{album}/{track}.mp3")
    again = genremert.load_artist20(artist20_dir, split="album", seed=0)
    other = genremert.load_artist20(artist20_dir, split="album", seed=1)
    assert all(_ids(songs[s]) == _ids(again[s]) for s in genremert.SPLITS)
    assert _albums(other["test"]) != test


def test_splits_are_the_same_on_every_machine():
    """Golden values: sorted listings and seeded numpy Generators, nothing from the filesystem order."""
    albums = {f"artist_{a:02d}": [f"{1990 + b}-Album_{b}" for b in (5, 3, 1, 0, 2, 4)] for a in range(3)}
    assignment = genremert.artist20_album_split(albums, "album", seed=0)
    assert [[al for al, s in sorted(assignment[a].items()) if s == "test"] for a in sorted(assignment)] == [
        ["1994-Album_4"],
        ["1993-Album_3"],
        ["1994-Album_4"],
    ]
    assert assignment["artist_02"]["1992-Album_2"] == "validation"
    ids = [f"{g}.{i:05d}" for g in genremert.GTZAN_GENRES for i in range(100)][::-1]
    assert genremert.gtzan_split_ids("random", ids, seed=0)["test"][:5] == [
        "blues.00005",
        "blues.00016",
        "blues.00020",
        "blues.00036",
        "blues.00052",
    ]


def test_artist20_ellis_and_folds(artist20_dir):
    ellis = genremert.load_artist20(artist20_dir, split="ellis", seed=0)
    counts = [len(_albums(ellis[s])) for s in genremert.SPLITS]
    assert counts == [6 * 3, 6 * 1, 6 * 2]
    tested = []
    for k in range(6):
        fold = genremert.load_artist20(artist20_dir, split=f"fold{k}")
        train, val, test = (_albums(fold[s]) for s in genremert.SPLITS)
        assert not (train & val or train & test or val & test)
        assert (len(train), len(val), len(test)) == (24, 6, 6)
        tested += sorted(test)
    assert len(tested) == len(set(tested)) == 36  # every album is the test album exactly once


@pytest.mark.parametrize("sub", ["artist20", "artist20/mp3s-32k"])
def test_artist20_accepts_the_mp3s_folder_and_the_artist_folder(artist20_dir, sub):
    songs = genremert.load_artist20(artist20_dir / sub, split="album")
    reference = genremert.load_artist20(artist20_dir, split="album")
    assert _ids(songs["train"]) == _ids(reference["train"])


def test_artist20_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        genremert.load_artist20(tmp_path / "missing")
    flat = tmp_path / "flat" / "mp3s-32k" / "u2"
    flat.mkdir(parents=True)
    sf.write(flat / "01-One.mp3", _tone(0.3, 16000, 0), 16000, format="MP3")
    with pytest.raises(FileNotFoundError, match=r"album folder level is missing(.|\n)*<artist>/<album>/<track>\.mp3"):
        genremert.load_artist20(tmp_path / "flat")
    (tmp_path / "empty" / "u2" / "boy").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="boy holds no audio track"):
        genremert.load_artist20(tmp_path / "empty")
    few = write_artist20_tree(tmp_path / "few", artists=1, albums=2, tracks=1)
    with pytest.raises(ValueError, match="needs at least 3 albums.*artist_00 has 2"):
        genremert.load_artist20(few)


# ------------------------------------------------------------------------------------------- #
# Vocal stems
# ------------------------------------------------------------------------------------------- #


def test_vocal_stems_replace_the_mix_and_a_missing_stem_names_the_song(artist20_dir, tmp_path):
    mix = genremert.load_artist20(artist20_dir, split="album")
    stems = tmp_path / "stems"
    for split in mix.values():
        for song_id in split["song_id"]:
            (stems / song_id).mkdir(parents=True)
            sf.write(stems / song_id / "vocals.wav", _tone(0.3, 44100, 7, channels=2), 44100)
    vocals = genremert.load_artist20(artist20_dir, split="album", stems_dir=stems)
    assert _ids(vocals["test"]) == _ids(mix["test"])
    row = vocals["test"][0]
    assert row["audio"] == str(stems / row["song_id"] / "vocals.wav")
    missing_id = _ids(mix["validation"])[0]
    (stems / missing_id / "vocals.wav").unlink()
    with pytest.raises(FileNotFoundError, match=f"song {missing_id}"):
        genremert.load_artist20(artist20_dir, split="album", stems_dir=stems)


# ------------------------------------------------------------------------------------------- #
# Decoding, cache, slicing
# ------------------------------------------------------------------------------------------- #


def _song_table(tmp_path, lengths_seconds, rate=22050, channels=1):
    paths = []
    for i, seconds in enumerate(lengths_seconds):
        path = tmp_path / f"song{i}.wav"
        sf.write(path, _tone(seconds, rate, i, channels), rate, subtype="FLOAT")
        paths.append(str(path))
    features = song_table.song_features(["a", "b"], False)
    return Dataset.from_dict(
        {"audio": paths, "label": [i % 2 for i in range(len(paths))], "song_id": [f"s{i}" for i in range(len(paths))]},
        features=features,
    )


def test_decode_mixes_down_and_resamples_to_the_header_length(tmp_path):
    sf.write(tmp_path / "stereo.wav", _tone(1.0, 22050, 0, channels=2), 22050, subtype="FLOAT")
    audio = audio_genremert.decode_audio(tmp_path / "stereo.wav", 24000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == genremert.audio_num_samples(tmp_path / "stereo.wav", 24000) == 24000
    source = _tone(1.0, 22050, 0, channels=2).mean(axis=1)
    np.testing.assert_allclose(audio_genremert.decode_audio(tmp_path / "stereo.wav", 22050), source, atol=1e-6)
    sf.write(tmp_path / "a.mp3", _tone(2.0, 16000, 0), 16000, format="MP3")
    assert len(audio_genremert.decode_audio(tmp_path / "a.mp3", 16000)) == genremert.audio_num_samples(
        tmp_path / "a.mp3", 16000
    )


def test_slice_counts_remainder_and_short_songs(tmp_path):
    songs = _song_table(tmp_path, [10.0, 2.0, 3.0])
    slices = genremert.slice_songs(songs, 16000, 3.0, 1.0)
    table = slices.with_format(None)
    # hop 2 s: 10 s → starts 0, 2, 4, 6 (remainder 1 s dropped); 2 s → one zero-padded slice; 3 s → 1.
    assert table["song_id"] == ["s0"] * 4 + ["s1", "s2"]
    assert table["start"] == [0, 32000, 64000, 96000, 0, 0]
    with_end = genremert.slice_songs(songs, 16000, 3.0, 1.0, keep_remainder=True).with_format(None)
    assert with_end["start"][:5] == [0, 32000, 64000, 96000, 160000 - 48000]
    row = slices[4]
    assert row["input_values"].shape == (48000,) and row["song_id"] == "s1" and row["label"] == 1
    assert np.all(row["input_values"][32000:] == 0) and np.abs(row["input_values"][:32000]).max() > 0
    with pytest.warns(UserWarning, match=r"1 song\(s\) shorter than one slice dropped:\n  s1"):
        dropped = genremert.slice_songs(songs, 16000, 3.0, 1.0, short_songs="drop")
    assert dropped.num_rows == 5
    with pytest.raises(ValueError, match="overlap_seconds"):
        genremert.slice_songs(songs, 16000, 3.0, 3.0)


def test_slices_are_the_decoded_song_and_the_cache_is_reused(tmp_path):
    songs = _song_table(tmp_path, [5.0, 4.0], channels=2)
    cache = tmp_path / "cache"
    sliced = genremert.slice_songs(songs, 24000, 1.0, 0.5, cache_dir=cache)
    full = audio_genremert.decode_audio(songs[0]["audio"], 24000)
    row = sliced[3]
    assert row["input_values"].dtype == np.float32
    np.testing.assert_array_equal(row["input_values"], full[3 * 12000 : 3 * 12000 + 24000])
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == 1
    [sliced[i] for i in range(len(sliced))]
    entries = sorted(cache.rglob("*.npy"))
    stamps = [e.stat().st_mtime_ns for e in entries]
    assert len(entries) == 2
    again = genremert.slice_songs(songs, 24000, 1.0, 0.5, cache_dir=cache)  # a second run reuses the entries
    from_cache = again[3]["input_values"]
    np.testing.assert_array_equal(from_cache, row["input_values"])
    assert from_cache.flags.writeable  # torch.as_tensor must not get a read-only memory map
    assert [e.stat().st_mtime_ns for e in sorted(cache.rglob("*.npy"))] == stamps
    uncached = genremert.slice_songs(songs, 24000, 1.0, 0.5)
    np.testing.assert_array_equal(uncached[3]["input_values"], row["input_values"])
    other = tmp_path / "filled"
    assert genremert.fill_cache(songs, 24000, other, num_workers=2) == 2  # up front, in parallel
    assert len(list(other.rglob("*.npy"))) == 2 and not list(other.rglob("*.tmp*"))
    lengths = sorted(len(np.load(p)) for p in other.rglob("*.npy"))
    assert lengths == sorted(genremert.audio_num_samples(p, 24000) for p in songs["audio"]) == [96000, 120000]


def test_slices_work_with_select_shuffle_and_dataloader_workers(tmp_path):
    songs = _song_table(tmp_path, [3.0, 3.0, 2.0, 4.0])
    slices = genremert.slice_songs(songs, 16000, 1.0)
    expected = {(r["song_id"], i): r["input_values"] for i, r in enumerate(slices)}
    shuffled = slices.shuffle(seed=0).select(range(6))
    assert shuffled[0]["input_values"].shape == (16000,)
    loader = torch.utils.data.DataLoader(slices, batch_size=4, num_workers=2, collate_fn=lambda rows: rows)
    rows = [r for batch in loader for r in batch]
    assert len(rows) == len(slices) == 12
    for i, r in enumerate(rows):
        np.testing.assert_array_equal(r["input_values"], expected[(r["song_id"], i)])


def _separate_vocals_script():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "separate_vocals.py"
    spec = importlib.util.spec_from_file_location("separate_vocals", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_separate_vocals_script_writes_the_stems_layout_the_loaders_read(tmp_path):
    script = _separate_vocals_script()
    root = write_artist20_tree(tmp_path, artists=2, albums=3, tracks=1)
    songs = genremert.load_artist20(root)
    stems = tmp_path / "stems"
    halve = lambda stereo: 0.5 * stereo  # a stand-in separator: Open-Unmix needs weights from the network
    paths = script.song_paths(songs)
    assert script.separate_songs(paths, stems, halve, 44100, log=lambda _: None) == 6
    assert script.separate_songs(paths, stems, halve, 44100, log=lambda _: None) == 0  # existing stems kept
    vocals = genremert.load_artist20(root, stems_dir=stems)
    row = vocals["train"][0]
    info = sf.info(row["audio"])
    assert row["audio"] == str(stems / row["song_id"] / "vocals.wav") and (info.samplerate, info.channels) == (44100, 2)
    mix = audio_genremert.decode_audio(songs["train"][0]["audio"], 16000)
    stem = audio_genremert.decode_audio(row["audio"], 16000)
    assert abs(len(stem) - len(mix)) <= 2
    n = min(len(mix), len(stem)) - 200
    np.testing.assert_allclose(stem[100:n], 0.5 * mix[100:n], atol=2e-3)


def test_separate_vocals_without_openunmix_says_how_to_install_it():
    script = _separate_vocals_script()
    try:
        import openunmix  # noqa: F401

        pytest.skip("openunmix is installed here")
    except ImportError:
        pass
    with pytest.raises(SystemExit, match="pip install openunmix"):
        script.open_unmix_separator("umxhq", "cpu", 1)


def test_slice_songs_takes_undecoded_audio_cells_and_refuses_decoded_ones(tmp_path):
    from datasets import Audio

    songs = _song_table(tmp_path, [2.0, 1.0])
    undecoded = songs.cast_column("audio", Audio(decode=False))
    slices = genremert.slice_songs(undecoded, 16000, 1.0)
    assert slices.num_rows == 3
    np.testing.assert_array_equal(
        slices[2]["input_values"], genremert.slice_songs(songs, 16000, 1.0)[2]["input_values"]
    )
    decoded = Dataset.from_dict({"audio": [[0.1, 0.2]], "label": [0], "song_id": ["x"]})
    with pytest.raises(TypeError, match=r"songs\['audio'\]\[0\] must be a file path"):
        genremert.slice_songs(decoded, 16000, 1.0)
