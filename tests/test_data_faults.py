"""Faults in the data a user hands over, each named with the file, field or row and what was expected: a torn or
malformed split.json, a MagnaTagATune annotations_final.csv that is not UTF-8 or repeats a clip, a label column mixing
numbers and names or holding comma-separated tags, data files whose names merely contain a split word."""

import json
import warnings
from pathlib import Path

import pytest
import soundfile as sf
from mtat_tree import LAYOUT, TAGS, write_mtat_tree
from test_your_data import tone

from genremert import load_dataset_songs, load_magnatagatune
from genremert.data import your_data
from genremert.data.magnatagatune import read_annotations
from genremert.data.your_data import split_of_data_file


def write_clips(folder: Path, count: int) -> list:
    """`count` short wav files `clips/c<i>.wav` under `folder`, three pitches; their paths relative to `folder`."""
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        sf.write(folder / "clips" / f"c{index}.wav", tone(0.3, 8000, 200 + 90 * (index % 3), seed=index), 8000)
        names.append(f"clips/c{index}.wav")
    return names


def write_csv(path: Path, rows) -> None:
    """A CSV of `path,genre` rows (quoted: a label may hold a comma)."""
    lines = ["path,genre", *(f'{audio},"{label}"' for audio, label in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------------
# split.json
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """An audio folder, one sub-folder per label, and the split.json its first load wrote."""
    root = tmp_path_factory.mktemp("folder")
    for label, frequency in (("rock", 220), ("jazz", 440), ("pop", 880)):
        (root / "audio" / label).mkdir(parents=True)
        for index in range(4):
            sf.write(root / "audio" / label / f"{label}_{index}.wav", tone(0.3, 8000, frequency + index), 8000)
    split_file = root / "run" / "split.json"
    load_dataset_songs(str(root / "audio"), split_file=split_file)
    return root / "audio", json.loads(split_file.read_text())


def corrupt(text: str, saved: dict, fault: str) -> str:
    if fault == "torn":
        return text[: len(text) // 2]
    if fault == "empty":
        return ""
    if fault == "not an object":
        return json.dumps([saved])
    if fault == "no groups":
        return json.dumps({"seed": 0, "fractions": [0.8, 0.1, 0.1]})
    if fault == "groups not an object":
        return json.dumps({"groups": sorted(saved["groups"])})
    if fault == "unknown split":
        return json.dumps({"groups": {**saved["groups"], "rock_0": "training"}})
    if fault == "missing group":
        return json.dumps({"groups": {g: s for g, s in saved["groups"].items() if g != "jazz_2"}})
    raise AssertionError(fault)


@pytest.mark.parametrize(
    "fault, message",
    [
        ("torn", r"split.json is not valid JSON \(line \d+, column \d+: .*interrupted run"),
        ("empty", r"split.json is empty"),
        ("not an object", r"split.json holds a JSON list; expected a JSON object \{\"groups\""),
        ("no groups", r"split.json has no \"groups\" \(keys: \['fractions', 'seed'\]\)"),
        ("groups not an object", r"split.json: \"groups\" is a JSON list"),
        ("unknown split", r"split.json: 1 of its 12 group\(s\) have an unknown split, e.g. 'rock_0': 'training'"),
        ("missing group", r"split.json does not name 1 group\(s\) of the dataset, e.g. 'jazz_2'"),
    ],
)
def test_a_torn_or_malformed_split_file_is_named_with_what_to_do_and_kept(labelled_folder, tmp_path, fault, message):
    folder, saved = labelled_folder
    split_file = tmp_path / "split.json"
    split_file.write_text(corrupt(json.dumps(saved, indent=1), saved, fault), encoding="utf-8")
    before = split_file.read_bytes()
    with pytest.raises(ValueError, match=message) as caught:
        load_dataset_songs(str(folder), split_file=split_file)
    assert str(split_file) in str(caught.value) and "elete" in str(caught.value)  # delete it to draw a new split
    assert split_file.read_bytes() == before  # never overwritten: the user decides


def test_a_split_file_is_written_whole_or_not_at_all(labelled_folder, tmp_path, monkeypatch):
    folder, _ = labelled_folder

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(your_data.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_dataset_songs(str(folder), split_file=tmp_path / "run" / "split.json")
    assert list((tmp_path / "run").iterdir()) == []  # neither a half-written split.json nor a temporary file


# ----------------------------------------------------------------------------------------------------------------------
# MagnaTagATune's annotations_final.csv
# ----------------------------------------------------------------------------------------------------------------------


def annotations(*rows: str) -> bytes:
    return ('"clip_id"\t"guitar"\t"slow"\t"mp3_path"\n' + "".join(row + "\n" for row in rows)).encode("utf-8")


def test_a_non_utf8_annotations_file_names_the_line_and_the_encoding(tmp_path):
    data = annotations('"1"\t"1"\t"0"\t"0/a-1-2.mp3"', '"2"\t"0"\t"1"\t"0/b-1-2.mp3"')
    (tmp_path / "annotations_final.csv").write_bytes(data.replace(b"0/b-1", b"0/b\xe9-1"))  # latin-1 é
    with pytest.raises(
        ValueError, match=r"annotations_final.csv, line 3, column \d+: byte 0xe9 is not UTF-8"
    ) as caught:
        load_magnatagatune(tmp_path)
    assert "expected annotations_final.csv as UTF-8" in str(caught.value)
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)
    # A byte-order mark (a file saved as "UTF-8 with BOM") is UTF-8: read.
    (tmp_path / "annotations_final.csv").write_bytes(b"\xef\xbb\xbf" + data)
    assert read_annotations(tmp_path / "annotations_final.csv") == (
        ["guitar", "slow"],
        [("1", [1, 0], "0/a-1-2.mp3"), ("2", [0, 1], "0/b-1-2.mp3")],
    )


def test_an_identical_repeated_clip_row_is_dropped_with_a_warning_naming_it(tmp_path):
    root = write_mtat_tree(tmp_path / "mtat", clip_seconds=0.5)
    csv_path = root / "annotations_final.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    csv_path.write_text("\n".join([*lines, lines[3]]) + "\n", encoding="utf-8")  # line 4 again, as line 22
    clip_id = lines[3].split("\t")[0].strip('"')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        songs = load_magnatagatune(root, num_tags=len(TAGS))
    messages = "\n".join(str(w.message) for w in caught)
    assert "1 row(s) repeat an earlier row exactly and are dropped" in messages
    assert f"clip {clip_id} (" in messages and f"on line {len(lines) + 1}, a copy of line 4" in messages
    song_ids = [song_id for split in songs for song_id in songs[split]["song_id"]]
    assert len(song_ids) == len(set(song_ids)) == 2 * sum(len(songs) for songs in LAYOUT.values())


@pytest.mark.parametrize("conflict", ["tags", "clip_id", "mp3_path"])
def test_conflicting_rows_of_one_clip_are_refused_naming_both_lines(tmp_path, conflict):
    first = '"7"\t"1"\t"0"\t"0/a-1-2.mp3"'
    second = {
        "tags": '"7"\t"1"\t"1"\t"0/a-1-2.mp3"',
        "clip_id": '"8"\t"1"\t"0"\t"0/a-1-2.mp3"',
        "mp3_path": '"7"\t"1"\t"0"\t"5/other-1-2.mp3"',
    }[conflict]
    (tmp_path / "annotations_final.csv").write_bytes(annotations(first, '"9"\t"0"\t"1"\t"0/b-1-2.mp3"', second))
    expected = {
        "tags": r"clip '7' \(0/a-1-2.mp3\) has the tags \[\] only on the first and \['slow'\] only on the second",
        "clip_id": r"clip_id '7' and '8' \(mp3_path '0/a-1-2.mp3'\)",
        "mp3_path": r"mp3_path '0/a-1-2.mp3' and '5/other-1-2.mp3' \(clip_id '7'\)",
    }[conflict]
    with pytest.raises(ValueError, match=r"annotations_final.csv: lines 2 and 4 describe the same clip differently: "):
        load_magnatagatune(tmp_path)
    with pytest.raises(ValueError, match=expected):
        read_annotations(tmp_path / "annotations_final.csv")


# ----------------------------------------------------------------------------------------------------------------------
# Own data: label columns
# ----------------------------------------------------------------------------------------------------------------------


def test_a_label_column_mixing_numbers_and_names_is_refused_with_examples(tmp_path):
    # CSV: every cell a string, some reading as numbers.
    (tmp_path / "csv").mkdir()
    write_csv(tmp_path / "csv" / "songs.csv", [("clips/a.wav", "rock"), ("clips/b.wav", "1"), ("clips/c.wav", "jazz")])
    with pytest.raises(ValueError, match=r"the label column 'genre' mixes name and number: 2 name label\(s\), e.g. "):
        load_dataset_songs(
            str(tmp_path / "csv"), audio_column="path", label_column="genre", cache_dir=str(tmp_path / "cache")
        )
    # JSON lines: real numbers beside names, and the examples name split and row.
    (tmp_path / "jsonl").mkdir()
    cells = [1, "rock", 2, "jazz"]
    (tmp_path / "jsonl" / "songs.jsonl").write_text(
        "".join(json.dumps({"path": f"clips/{i}.wav", "genre": cell}) + "\n" for i, cell in enumerate(cells))
    )
    with pytest.raises(ValueError) as caught:
        load_dataset_songs(
            str(tmp_path / "jsonl"), audio_column="path", label_column="genre", cache_dir=str(tmp_path / "cache")
        )
    message = str(caught.value)
    assert "'genre' mixes name and number" in message
    assert "2 number label(s), e.g. train[0]=1, train[2]=2" in message and "train[1]='rock', train[3]='jazz'" in message
    assert "all class names (strings) or all class ids (integers)" in message
    # Across splits: ids in one file, names in another.
    (tmp_path / "splits").mkdir()
    write_csv(tmp_path / "splits" / "train.csv", [("clips/a.wav", "0"), ("clips/b.wav", "1")])
    write_csv(tmp_path / "splits" / "test.csv", [("clips/c.wav", "rock")])
    with pytest.raises(ValueError, match=r"mixes name and number: 1 name label\(s\), e.g. test\[0\]='rock'"):
        load_dataset_songs(
            str(tmp_path / "splits"), audio_column="path", label_column="genre", cache_dir=str(tmp_path / "cache")
        )


def test_a_label_column_mixing_lists_and_single_labels_is_refused(tmp_path):
    cells = [["rock", "guitar"], "jazz", ["pop"]]
    (tmp_path / "songs.jsonl").write_text(
        "".join(json.dumps({"path": f"clips/{i}.wav", "tags": cell}) + "\n" for i, cell in enumerate(cells))
    )
    with pytest.raises(ValueError, match=r"'tags' mixes list and name: 2 list label\(s\), e.g. train\[0\]=\['rock'"):
        load_dataset_songs(str(tmp_path), audio_column="path", label_column="tags", cache_dir=str(tmp_path / "cache"))


def test_comma_separated_tags_in_a_single_label_column_are_warned_about(tmp_path):
    labels = ["rock,guitar", "jazz", "pop;vocal", "jazz"] * 3
    write_csv(tmp_path / "songs.csv", zip(write_clips(tmp_path, len(labels)), labels))
    with pytest.warns(UserWarning) as caught:
        songs = load_dataset_songs(
            str(tmp_path), audio_column="path", label_column="genre", cache_dir=str(tmp_path / "cache")
        )
    message = next(str(w.message) for w in caught if "comma or semicolon" in str(w.message))
    assert "the label column 'genre' holds 2 label(s) with a comma or semicolon" in message
    assert "train[0]='rock,guitar', train[2]='pop;vocal'" in message and "a list per row (list cells" in message
    assert songs["train"].features["label"].names == ["jazz", "pop;vocal", "rock,guitar"]  # as warned: one class each


def test_tags_as_list_cells_of_a_metadata_jsonl_are_multi_label(tmp_path):
    """What the warning above advises, in an audio folder: metadata.jsonl with a list of tags per file."""
    names = write_clips(tmp_path, 12)
    tags = [["rock", "guitar"], ["jazz"], ["pop", "vocal"]]
    (tmp_path / "metadata.jsonl").write_text(
        "".join(json.dumps({"file_name": n, "tags": tags[i % 3]}) + "\n" for i, n in enumerate(names))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: list cells are what multi-label needs
        songs = load_dataset_songs(str(tmp_path), label_column="tags", split_file=tmp_path / "split.json")
    names_of = songs["train"].features["label"].feature.names
    assert names_of == ["guitar", "jazz", "pop", "rock", "vocal"]
    assert sum(len(songs[split]) for split in songs) == 12
    first = next(row for split in songs for row in songs[split] if row["song_id"] == "c0")
    assert sorted(names_of[i] for i in first["label"]) == ["guitar", "rock"]


# ----------------------------------------------------------------------------------------------------------------------
# Own data: split names from file names
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative, split",
    [
        ("data/train-00000-of-00001.parquet", "train"),
        ("validation-00000-of-00001.parquet", "validation"),
        ("my_val_set.csv", "validation"),
        ("dev.jsonl", "validation"),
        ("test1.csv", "test"),
        ("test/part-0.parquet", "test"),
        ("songs.csv", "train"),
        ("contest_results.parquet", "train"),
        ("devices.csv", "train"),
        ("latest.csv", "train"),
        ("attested/evaluation.csv", "train"),
        ("validation/contest.csv", "validation"),
    ],
)
def test_only_whole_split_words_name_a_split(relative, split):
    assert split_of_data_file(relative)[0] == split


def test_a_name_with_two_split_words_is_refused():
    with pytest.raises(ValueError, match=r"'data/train_test.csv': 'train_test' names the words \['test', 'train'\]"):
        split_of_data_file("data/train_test.csv")


def test_data_files_merely_containing_a_split_word_are_train_with_a_warning(tmp_path):
    clips = write_clips(tmp_path, 12)
    labels = ["a", "b", "c"] * 4
    write_csv(tmp_path / "contest_results.csv", list(zip(clips, labels))[:9])
    write_csv(tmp_path / "devices.csv", list(zip(clips, labels))[9:])
    with pytest.warns(UserWarning, match=r"2 data file\(s\) hold a split word only inside a longer word") as caught:
        songs = load_dataset_songs(
            str(tmp_path),
            audio_column="path",
            label_column="genre",
            split_file=tmp_path / "split.json",
            cache_dir=str(tmp_path / "cache"),
        )
    message = next(str(w.message) for w in caught if "inside a longer word" in str(w.message))
    assert "contest_results.csv (contains 'test')" in message and "devices.csv (contains 'dev')" in message
    assert "contest_results.csv -> train (no split word)" in message
    # Both files were read as the one train split and split by song: every row once, none lost to a false split.
    assert sorted(Path(p).name for split in songs for p in songs[split]["audio"]) == sorted(Path(c).name for c in clips)
    assert json.loads((tmp_path / "split.json").read_text())["groups"]


def test_split_words_in_folders_choose_the_split(tmp_path):
    rows = list(zip(write_clips(tmp_path, 12), ["a", "b", "c"] * 4))
    for folder, part in (("train", rows[:8]), ("valid", rows[8:10]), ("test", rows[10:])):
        (tmp_path / folder).mkdir()
        write_csv(tmp_path / folder / "part-0.csv", part)  # paths relative to the dataset folder
    songs = load_dataset_songs(
        str(tmp_path), audio_column="path", label_column="genre", cache_dir=str(tmp_path / "cache")
    )
    assert [len(songs[split]) for split in ("train", "validation", "test")] == [8, 2, 2]
    assert sorted(Path(p).name for p in songs["test"]["audio"]) == ["c10.wav", "c11.wav"]
