"""The MTG-Jamendo and FMA loaders on tiny trees in the real layouts, with real (short) MP3 files written by libsndfile:
official split sizes, label sets and multi-label vectors, FMA's nested sizes, bad and missing files reported like
GTZAN's, paths leading out of the data folder refused, and malformed split files / tracks.csv named by file and line."""

import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import ClassLabel

from genremert import BadAudioFilesError, slice_songs
from genremert.data.fma import fma_rows, load_fma
from genremert.data.mtg_jamendo import load_mtg_jamendo, mtg_jamendo_rows


RATE = 16000


def write_tone(path: Path, seed: int, seconds: float = 0.3) -> None:
    """A short real audio file (its format from the suffix: MP3 via libsndfile, or FLAC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    time = np.arange(int(seconds * RATE)) / RATE
    audio = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 1500) * time) + 0.02 * rng.standard_normal(time.shape)
    fmt = "MP3" if path.suffix.lower() == ".mp3" else path.suffix[1:].upper()
    sf.write(path, audio.astype(np.float32), RATE, format=fmt)


def no_warnings(load, *args, **kwargs):
    """`load(...)`, asserting that the loader reported nothing (no unusable, missing or unlabelled track)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load(*args, **kwargs)
    reported = [str(w.message) for w in caught if str(w.message).startswith(("MTG-Jamendo:", "FMA:"))]
    assert not reported, reported
    return result


# ----------------------------------------------------------------------------------------------------------------------
# MTG-Jamendo
# ----------------------------------------------------------------------------------------------------------------------

# track number → (split of split-0, tags). 1908 has no instrument or mood tag, so it is absent from those subset files.
JAMENDO_TRACKS = {
    1200: ("train", ["genre---rock", "instrument---guitar", "mood/theme---happy"]),
    1201: ("train", ["genre---electronic", "instrument---synthesizer", "mood/theme---dark"]),
    1302: ("train", ["genre---rock", "instrument---synthesizer", "mood/theme---dark"]),
    1403: ("train", ["genre---electronic", "instrument---guitar", "mood/theme---happy"]),
    1504: ("validation", ["genre---rock", "instrument---guitar", "mood/theme---dark"]),
    1605: ("validation", ["genre---electronic", "instrument---synthesizer", "mood/theme---happy"]),
    1706: ("test", ["genre---rock", "instrument---synthesizer", "mood/theme---happy"]),
    1807: ("test", ["genre---electronic", "instrument---guitar", "mood/theme---dark"]),
    1908: ("test", ["genre---rock"]),
}
# How a few tracks lie on disk: the audio-low download's name, and a converted copy; the split files say .mp3.
JAMENDO_ON_DISK = {1201: "01/1201.low.mp3", 1302: "02/1302.flac"}
JAMENDO_SUBSET_FILES = {
    "top50": ("autotagging_top50tags", None),
    "genre": ("autotagging_genre", "genre"),
    "instrument": ("autotagging_instrument", "instrument"),
    "moodtheme": ("autotagging_moodtheme", "mood/theme"),
}
HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"


def jamendo_line(number: int, tags, path=None) -> str:
    path = path or f"{number % 100:02d}/{number}.mp3"
    return "\t".join([f"track_{number:07d}", f"artist_{number // 100:06d}", f"album_{number:06d}", path, "30.0", *tags])


def write_jamendo_tree(root: Path) -> Path:
    """The audio folder (NN/<number>.mp3) with the official split files under data/splits; split-1 swaps train and
    test of split-0 (so a split index is visibly used)."""
    for number in JAMENDO_TRACKS:
        write_tone(root / JAMENDO_ON_DISK.get(number, f"{number % 100:02d}/{number}.mp3"), number)
    for index, swap in ((0, {}), (1, {"train": "test", "test": "train"})):
        folder = root / "data" / "splits" / f"split-{index}"
        folder.mkdir(parents=True)
        for prefix, category in JAMENDO_SUBSET_FILES.values():
            for part in ("train", "validation", "test"):
                lines = []
                for number, (split, tags) in JAMENDO_TRACKS.items():
                    kept = [tag for tag in tags if category is None or tag.startswith(category + "---")]
                    if swap.get(split, split) == part and kept:
                        lines.append(jamendo_line(number, kept) + "\n")
                (folder / f"{prefix}-{part}.tsv").write_text(HEADER + "".join(lines), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def jamendo_dir(tmp_path_factory):
    return write_jamendo_tree(tmp_path_factory.mktemp("jamendo"))


def split_ids(songs):
    return {name: list(songs[name]["song_id"]) for name in songs}


def tags_of(split) -> dict:
    names = split.features["label"].feature.names
    return {song_id: [names[i] for i in label] for song_id, label in zip(split["song_id"], split["label"])}


def test_jamendo_top50_official_split_tags_and_files(jamendo_dir):
    songs = no_warnings(load_mtg_jamendo, jamendo_dir)  # subset top50, split 0
    assert {name: songs[name].num_rows for name in songs} == {"train": 4, "validation": 2, "test": 3}
    feature = songs["train"].features["label"]
    assert isinstance(feature.feature, ClassLabel)  # a list of tags: multi-label
    every_tag = sorted({tag for _, tags in JAMENDO_TRACKS.values() for tag in tags})
    assert feature.feature.names == every_tag  # top50 names keep their category
    for name in songs:
        for song_id, tags in tags_of(songs[name]).items():
            number = int(song_id.removeprefix("track_"))
            assert JAMENDO_TRACKS[number] == (name, tags)
    audio = dict(zip(songs["train"]["song_id"], songs["train"]["audio"]))
    assert audio["track_0001201"] == str(jamendo_dir / "01" / "1201.low.mp3")  # the audio-low name
    assert audio["track_0001302"] == str(jamendo_dir / "02" / "1302.flac")  # a converted copy
    assert audio["track_0001200"] == str(jamendo_dir / "00" / "1200.mp3")
    assert songs["train"]["album"][0] == "album_001200"
    vector = np.zeros(len(every_tag))
    vector[songs["test"]["label"][0]] = 1
    assert vector.sum() == len(JAMENDO_TRACKS[int(songs["test"]["song_id"][0][6:])][1])


@pytest.mark.parametrize(
    "subset, names, sizes",
    [
        ("genre", ["electronic", "rock"], (4, 2, 3)),
        ("instrument", ["guitar", "synthesizer"], (4, 2, 2)),
        ("moodtheme", ["dark", "happy"], (4, 2, 2)),
    ],
)
def test_jamendo_single_category_subsets_drop_the_category_from_the_names(jamendo_dir, subset, names, sizes):
    songs = no_warnings(load_mtg_jamendo, jamendo_dir, subset=subset)
    assert songs["train"].features["label"].feature.names == names
    assert tuple(songs[name].num_rows for name in ("train", "validation", "test")) == sizes
    assert all(len(label) == 1 for name in songs for label in songs[name]["label"])


def test_jamendo_split_index_picks_the_split_folder(jamendo_dir):
    first, second = (split_ids(no_warnings(load_mtg_jamendo, jamendo_dir, split=s)) for s in (0, "split-1"))
    assert second["train"] == first["test"] and second["test"] == first["train"]
    with pytest.raises(FileNotFoundError, match=r"no folder .*split-7 for split=7; found split-0, split-1"):
        load_mtg_jamendo(jamendo_dir, split=7)
    with pytest.raises(ValueError, match=r"split 'first' is not an official split"):
        load_mtg_jamendo(jamendo_dir, split="first")
    with pytest.raises(ValueError, match=r"unknown subset 'mood'; expected one of top50, genre"):
        load_mtg_jamendo(jamendo_dir, subset="mood")


def test_jamendo_songs_slice_into_tag_vectors(jamendo_dir):
    songs = no_warnings(load_mtg_jamendo, jamendo_dir, subset="genre")
    slices = slice_songs(songs["validation"], sampling_rate=8000, slice_seconds=0.2)
    row = slices[0]
    assert row["input_values"].shape == (1600,) and np.isfinite(row["input_values"]).all()
    assert row["label"] == songs["validation"]["label"][0] and row["song_id"] == songs["validation"]["song_id"][0]


def test_jamendo_rows_stream_one_line_at_a_time(tmp_path):
    root = write_jamendo_tree(tmp_path / "jamendo")
    rows = mtg_jamendo_rows(root, "genre", 0, parts=["validation"])
    first = next(rows)
    assert first == ("validation", str(root / "04" / "1504.mp3"), ("rock",), "track_0001504", "album_001504")
    # A bad line later in the file is reached only when the rows get there.
    tsv = root / "data" / "splits" / "split-0" / "autotagging_genre-validation.tsv"
    with open(tsv, "a", encoding="utf-8") as handle:
        handle.write("track_x\tartist_1\talbum_1\t00/1.mp3\t30.0\tgenre---rock\n")
    rows = mtg_jamendo_rows(root, "genre", 0, parts=["validation"])
    assert [row[3] for row in (next(rows), next(rows))] == ["track_0001504", "track_0001605"]
    with pytest.raises(ValueError, match=r"autotagging_genre-validation.tsv, line 4: TRACK_ID 'track_x'"):
        next(rows)


def test_jamendo_bad_and_missing_files_are_reported_like_gtzan(tmp_path):
    root = write_jamendo_tree(tmp_path / "jamendo")
    (root / "00" / "1200.mp3").write_bytes(b"")
    (root / "03" / "1403.mp3").write_text("not an mp3 at all" * 30)
    with pytest.warns(UserWarning) as record:
        songs = load_mtg_jamendo(root, subset="genre")
    message = "\n".join(str(w.message) for w in record)
    assert "MTG-Jamendo: 2 unusable audio file(s)" in message
    assert "1200.mp3: empty file" in message and "1403.mp3: not a readable audio file" in message
    assert songs["train"]["song_id"] == ["track_0001201", "track_0001302"]
    with pytest.raises(BadAudioFilesError) as caught:
        load_mtg_jamendo(root, subset="genre", on_bad_file="raise")
    assert sorted(Path(b.path).name for b in caught.value.bad_files) == ["1200.mp3", "1403.mp3"]
    # A listed track absent from disk: refused up front, unless allowed.
    (root / "07" / "1807.mp3").unlink()
    with pytest.raises(BadAudioFilesError, match=r"1 song\(s\) of the split lists are not on disk \(.*test 1 of 3"):
        load_mtg_jamendo(root, subset="genre")
    with pytest.warns(UserWarning, match=r"1807.mp3: missing: track track_0001807 of the test split"):
        songs = load_mtg_jamendo(root, subset="genre", allow_missing_files=True)
    assert songs["test"]["song_id"] == ["track_0001706", "track_0001908"]


@pytest.mark.parametrize("listed", ["../outside.mp3", "00/../../outside.mp3", "/etc/passwd"])
def test_jamendo_paths_leading_out_of_the_folder_are_refused_naming_file_and_line(tmp_path, listed):
    root = write_jamendo_tree(tmp_path / "jamendo")
    write_tone(tmp_path / "outside.mp3", 0)  # exists, and still refused
    tsv = root / "data" / "splits" / "split-0" / "autotagging_genre-test.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    lines[2] = jamendo_line(1807, ["genre---electronic"], path=listed)
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        load_mtg_jamendo(root, subset="genre")
    message = str(caught.value)
    assert f"{tsv}, line 3: PATH {listed!r}" in message and str(root) in message
    assert ("leads out of the audio folder" in message) or ("is not a relative path" in message)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("track_0000001\tartist_1\talbum_1\t01/1.mp3\t30.0", r"line 3: 5 tab-separated field\(s\).*at least one tag"),
        ("track_0000001\tartist_1\talbum_1\t\t30.0\tgenre---rock", r"line 3: PATH empty"),
        ("1\tartist_1\talbum_1\t01/1.mp3\t30.0\tgenre---rock", r"line 3: TRACK_ID '1'; expected track_<digits>"),
        ("track_0000001\tartist_1\talbum_1\t01/1.mp3\tlong\tgenre---rock", r"line 3: DURATION 'long'"),
        ("track_0000001\tartist_1\talbum_1\t01/1.mp3\t30.0\trock", r"line 3: tag 'rock' .*<category>---<tag>"),
        ("track_0000001\tartist_1\talbum_1\t01/1.mp3\t30.0\tmood/theme---dark", r"line 3: tag 'mood/theme---dark'.*"),
        (jamendo_line(1200, ["genre---rock"]), r"line 3: track_0001200 is listed again \(first at .*train.tsv, line 2"),
    ],
)
def test_jamendo_malformed_split_lines_are_named_by_file_and_line(tmp_path, line, expected):
    root = write_jamendo_tree(tmp_path / "jamendo")
    tsv = root / "data" / "splits" / "split-0" / "autotagging_genre-test.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    lines[2] = line
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"autotagging_genre-test.tsv, " + expected):
        load_mtg_jamendo(root, subset="genre")


def test_jamendo_wrong_header_non_utf8_and_missing_split_files(tmp_path):
    root = write_jamendo_tree(tmp_path / "jamendo")
    tsv = root / "data" / "splits" / "split-0" / "autotagging_genre-train.tsv"
    tsv.write_text(tsv.read_text(encoding="utf-8").replace("TRACK_ID\t", "ID\t", 1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"genre-train.tsv, line 1: the header is \['ID'.*expected the tab-separated"):
        load_mtg_jamendo(root, subset="genre")
    tsv = root / "data" / "splits" / "split-0" / "autotagging_moodtheme-train.tsv"
    tsv.write_bytes(tsv.read_bytes().replace(b"album_001302", b"album_\xe91302"))
    with pytest.raises(ValueError, match=r"moodtheme-train.tsv, line 4, column \d+: byte 0xe9 is not UTF-8"):
        load_mtg_jamendo(root, subset="moodtheme")
    (root / "data" / "splits" / "split-0" / "autotagging_instrument-test.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"split file\(s\) of subset='instrument' missing: .*instrument-test"):
        load_mtg_jamendo(root, subset="instrument")
    # The split files may live elsewhere (a clone of the dataset's repository): splits_dir.
    (tmp_path / "clone").mkdir()
    shutil.move(root / "data", tmp_path / "clone" / "data")
    with pytest.raises(FileNotFoundError, match=r"(?s)no split-<K> folders in .*splits_dir=<a clone of"):
        load_mtg_jamendo(root, subset="top50")
    assert no_warnings(load_mtg_jamendo, root, subset="top50", splits_dir=tmp_path / "clone")["train"].num_rows == 4


# ----------------------------------------------------------------------------------------------------------------------
# FMA
# ----------------------------------------------------------------------------------------------------------------------

FMA_GENRES = {
    12: ("Rock", 0),
    15: ("Electronic", 0),
    25: ("Punk", 12),
    42: ("Ambient Electronic", 15),
    38: ("Experimental", 0),
}
# track id → (split, smallest subset, genre_top, genres_all). Subsets nest: small ⊂ medium ⊂ large.
FMA_TRACKS = {
    2: ("training", "small", "Rock", [12, 25]),
    5: ("training", "small", "Electronic", [15, 42]),
    140: ("validation", "small", "Rock", [12]),
    141: ("validation", "small", "Electronic", [15]),
    1024: ("test", "small", "Rock", [12, 25]),
    1025: ("test", "small", "Electronic", [15]),
    3000: ("training", "medium", "Rock", [12]),
    3001: ("validation", "medium", "Electronic", [15, 42]),
    3002: ("test", "medium", "Experimental", [38]),
    150000: ("training", "large", "", [38]),
    150001: ("validation", "large", "", [12, 38]),
    150002: ("test", "large", "Rock", [12]),
}
SIZE_SUBSETS = {"small": {"small"}, "medium": {"small", "medium"}, "large": {"small", "medium", "large"}}


def write_tracks_csv(path: Path, tracks=FMA_TRACKS) -> None:
    """tracks.csv as pandas writes FMA's: two header rows, pandas' index-name row, then one row per track; a title with
    a comma and a line break (a quoted field over two lines), as real titles have."""
    top = ["", "album", "artist", "set", "set", "track", "track", "track", "track"]
    second = ["", "id", "id", "split", "subset", "genre_top", "genres", "genres_all", "title"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerows([top, second, ["track_id"] + [""] * (len(top) - 1)])
        for track_id, (split, subset, genre_top, genres_all) in tracks.items():
            title = "Intro, part 1\n(live)" if track_id == 5 else f"Song {track_id}"
            genres = "[" + ", ".join(str(g) for g in genres_all[-1:]) + "]"
            all_ = "[" + ", ".join(str(g) for g in genres_all) + "]"
            writer.writerow([track_id, 100 + track_id % 7, 7, split, subset, genre_top, genres, all_, title])


def write_fma_tree(root: Path) -> Path:
    (root / "fma_metadata").mkdir(parents=True)
    write_tracks_csv(root / "fma_metadata" / "tracks.csv")
    with open(root / "fma_metadata" / "genres.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["genre_id", "#tracks", "parent", "title", "top_level"])
        for genre_id, (title, parent) in FMA_GENRES.items():
            writer.writerow([genre_id, 1, parent, title, parent or genre_id])
    for size, subsets in SIZE_SUBSETS.items():
        for track_id, (_, subset, _, _) in FMA_TRACKS.items():
            if subset in subsets:
                write_tone(root / f"fma_{size}" / f"{track_id:06d}"[:3] / f"{track_id:06d}.mp3", track_id)
    shutil.copytree(root / "fma_large", root / "fma_full")
    return root


@pytest.fixture(scope="module")
def fma_dir(tmp_path_factory):
    return write_fma_tree(tmp_path_factory.mktemp("fma"))


def expected_fma(size: str) -> dict:
    splits = {"training": "train", "validation": "validation", "test": "test"}
    result = {"train": [], "validation": [], "test": []}
    for track_id, (split, subset, _, _) in FMA_TRACKS.items():
        if subset in SIZE_SUBSETS["large" if size == "full" else size]:
            result[splits[split]].append(f"{track_id:06d}")
    return result


def test_fma_small_genre_top_official_split(fma_dir):
    songs = no_warnings(load_fma, fma_dir)
    assert split_ids(songs) == expected_fma("small")  # 2 / 2 / 2
    assert songs["train"].features["label"] == ClassLabel(names=["Electronic", "Rock"])  # single-label
    for name in songs:
        for song_id, label, audio in zip(songs[name]["song_id"], songs[name]["label"], songs[name]["audio"]):
            assert songs[name].features["label"].int2str(label) == FMA_TRACKS[int(song_id)][2]
            assert audio == str(fma_dir / "fma_small" / song_id[:3] / f"{song_id}.mp3")
    assert songs["train"]["album"] == ["album_102", "album_105"]
    slices = slice_songs(songs["test"], sampling_rate=8000, slice_seconds=0.2)
    assert slices[0]["input_values"].shape == (1600,) and slices[0]["label"] == songs["test"]["label"][0]


def test_fma_sizes_nest_and_tracks_without_genre_top_are_counted(fma_dir):
    small, medium = (split_ids(no_warnings(load_fma, fma_dir, size=size)) for size in ("small", "medium"))
    assert medium == expected_fma("medium")
    assert all(set(small[name]) < set(medium[name]) for name in small)  # small ⊂ medium, split by split
    for size in ("large", "full"):
        with pytest.warns(UserWarning, match=r"FMA: 2 track\(s\) of fma_\w+ have no genre_top .*train 1, validation 1"):
            songs = load_fma(fma_dir, size=size)
        expected = {name: [i for i in ids if i not in ("150000", "150001")] for name, ids in expected_fma(size).items()}
        assert split_ids(songs) == expected
        assert all(set(medium[name]) <= set(songs[name]["song_id"]) for name in medium)
        assert songs["test"]["audio"][-1] == str(fma_dir / f"fma_{size}" / "150" / "150002.mp3")
    assert load_fma(fma_dir, size="medium")["test"].features["label"].names == ["Electronic", "Experimental", "Rock"]


def test_fma_genres_all_is_multi_label_named_by_genres_csv(fma_dir):
    songs = no_warnings(load_fma, fma_dir, size="large", labels="genres_all")
    assert split_ids(songs) == expected_fma("large")  # every track has a genre here
    names = songs["train"].features["label"].feature.names
    assert names == sorted(title for title, _ in FMA_GENRES.values())
    titles = {genre_id: title for genre_id, (title, _) in FMA_GENRES.items()}
    for name in songs:
        for song_id, label in zip(songs[name]["song_id"], songs[name]["label"]):
            assert sorted(names[i] for i in label) == sorted(titles[g] for g in FMA_TRACKS[int(song_id)][3])
    leaf = no_warnings(load_fma, fma_dir, labels="genres")  # genres: here the last genre of each track
    assert tags_of(leaf["train"]) == {"000002": ["Punk"], "000005": ["Ambient Electronic"]}
    rows = list(fma_rows(fma_dir, "small", "genres_all", parts=["test"]))
    assert rows[0] == (
        "test",
        str(fma_dir / "fma_small" / "001" / "001024.mp3"),
        ("Rock", "Punk"),
        "001024",
        "album_102",
    )


def test_fma_bad_and_missing_files_are_reported_like_gtzan(tmp_path):
    root = write_fma_tree(tmp_path / "fma")
    (root / "fma_small" / "000" / "000140.mp3").write_text("not an mp3 at all" * 30)
    with pytest.warns(UserWarning, match=r"FMA: 1 unusable audio file\(s\):\n  .*000140.mp3: not a readable"):
        songs = load_fma(root)
    assert songs["validation"]["song_id"] == ["000141"]
    with pytest.raises(BadAudioFilesError, match=r"000140.mp3"):
        load_fma(root, on_bad_file="raise")
    (root / "fma_medium" / "003" / "003002.mp3").unlink()
    with pytest.raises(BadAudioFilesError, match=r"1 song\(s\) of the split lists are not on disk \(.*test 1 of 3"):
        load_fma(root, size="medium")
    with pytest.warns(UserWarning, match=r"003002.mp3: missing: track 003002 of the test split"):
        assert load_fma(root, size="medium", allow_missing_files=True)["test"].num_rows == 2


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda rows: rows[3].__setitem__(3, "train"), r"line 4: \('set', 'split'\) of track 2 is 'train'; expected"),
        (lambda rows: rows[4].__setitem__(4, "tiny"), r"line 5: \('set', 'subset'\) of track 5 is 'tiny'"),
        (lambda rows: rows[3].__setitem__(0, "2a"), r"line 4: track_id '2a'; expected a non-negative integer"),
        (lambda rows: rows[6].pop(), r"line 8: 8 fields; the header has 9"),  # row 6 starts on line 8 (title of 5)
        (lambda rows: rows[5].__setitem__(0, "2"), r"line 7: track 2 again \(first on line 4\)"),
        (lambda rows: rows[1].__setitem__(3, "fold"), r"lines 1-2: no column \('set', 'split'\)"),
        (lambda rows: rows[3].__setitem__(7, "12, 25"), r"line 4: \('track', 'genres_all'\) of track 2 is '12, 25'"),
        (lambda rows: rows[3].__setitem__(7, "[12, 99]"), r"line 4: genre id\(s\) \[99\] of track 2 are not in"),
    ],
)
def test_fma_malformed_tracks_csv_is_named_by_file_and_line(tmp_path, edit, expected):
    (tmp_path / "fma_metadata").mkdir()
    (tmp_path / "fma_small").mkdir()
    write_tracks_csv(tmp_path / "fma_metadata" / "tracks.csv")
    with open(tmp_path / "fma_metadata" / "genres.csv", "w", encoding="utf-8") as handle:
        handle.write("genre_id,#tracks,parent,title,top_level\n")
        handle.write("".join(f"{g},1,{p},{t},{p or g}\n" for g, (t, p) in FMA_GENRES.items()))
    path = tmp_path / "fma_metadata" / "tracks.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(ValueError, match=r"tracks.csv, " + expected):
        load_fma(tmp_path, labels="genres_all")


def test_fma_layout_errors_name_the_folder_and_the_layout(tmp_path, fma_dir):
    with pytest.raises(
        FileNotFoundError, match=r"(?s)no folder fma_small for size='small' in .*fma_<size>/<NNN>/<NNNNNN>"
    ):
        load_fma(tmp_path)
    (tmp_path / "fma_small").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no tracks.csv in .*fma_metadata"):
        load_fma(tmp_path)
    with pytest.raises(ValueError, match=r"unknown size 'tiny'; expected one of small, medium, large, full"):
        load_fma(fma_dir, size="tiny")
    with pytest.raises(ValueError, match=r"unknown labels 'genre'; expected one of genre_top, genres, genres_all"):
        load_fma(fma_dir, labels="genre")
    # data_dir may be the audio folder itself, fma_metadata beside it.
    assert split_ids(no_warnings(load_fma, fma_dir / "fma_small")) == expected_fma("small")
    (tmp_path / "fma_metadata").mkdir()
    (tmp_path / "fma_metadata" / "tracks.csv").write_bytes(
        b",set,set,track\n,split,subset,genre_top\n2,training,small,Ro\xe9k\n"
    )
    with pytest.raises(ValueError, match=r"tracks.csv, line 3, column 20: byte 0xe9 is not UTF-8"):
        load_fma(tmp_path)
