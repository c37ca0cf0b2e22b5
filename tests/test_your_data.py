"""Your own data through the generic loader: audio folders, metadata.csv, parquet with embedded bytes, save_to_disk,
single-split datasets split by group, GTZAN from the Hub (against a local stand-in for the download), and safe
archive extraction. Everything offline."""

import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

import genremert
from genremert import load_dataset_songs
from genremert.data import archives
from genremert.data.your_data import group_split
from genremert.training import run


sys.path.insert(0, str(Path(__file__).resolve().parent))


REPO = Path(__file__).resolve().parent.parent


def tone(seconds=1.0, rate=16000, frequency=440.0, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32)


def encoded(fmt: str, rate: int, frequency: float) -> bytes:
    buffer = io.BytesIO()
    subtype = {"OGG": "VORBIS", "MP3": None, "FLAC": "PCM_16", "WAV": "PCM_16"}[fmt]
    sf.write(buffer, tone(1.5, rate, frequency), rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def test_audio_folder_with_label_sub_folders_is_split_by_song_and_the_split_is_kept(tmp_path):
    root = tmp_path / "folder"
    for label, frequency in (("rock", 220), ("jazz", 440), ("pop", 880)):
        (root / label).mkdir(parents=True)
        for index in range(5):
            sf.write(root / label / f"{label}_{index}.wav", tone(1.0, 16000, frequency + index), 16000)
        (root / label / f"._{label}_0.wav").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 100)  # AppleDouble: ignored
    split_file = tmp_path / "out" / "split.json"
    songs = load_dataset_songs(str(root), split_file=split_file, split_seed=3)
    assert songs["train"].features["label"].names == ["jazz", "pop", "rock"]
    assert sum(len(songs[s]) for s in songs) == 15
    assert all(len(songs[s]) > 0 for s in ("validation", "test"))
    assert split_file.is_file()
    again = load_dataset_songs(str(root), split_file=split_file, split_seed=99)  # the saved split wins over the seed
    assert again["test"]["song_id"] == songs["test"]["song_id"]


def test_audio_folder_with_metadata_keeps_songs_and_albums_together(tmp_path):
    root = tmp_path / "pieces"
    root.mkdir()
    lines = ["file_name,genre,track,record"]
    for album in range(9):
        label = ["blues", "metal", "disco"][album % 3]
        for track in range(2):
            for piece in range(2):  # two pieces of each recording
                name = f"a{album}_t{track}_p{piece}.flac"
                sf.write(root / name, tone(1.0, 22050, 200 + 50 * album + track), 22050, format="FLAC")
                lines.append(f"{name},{label},a{album}t{track},album{album}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    songs = load_dataset_songs(
        str(root), label_column="genre", song_column="track", group_column="record", split_file=tmp_path / "s.json"
    )
    albums = {split: set(songs[split]["album"]) for split in ("train", "validation", "test")}
    assert not (albums["train"] & albums["test"]) and not (albums["train"] & albums["validation"])
    assert not (albums["validation"] & albums["test"])
    # Pieces of one recording share its song id (scored together at song level).
    slices = genremert.slice_songs(songs["test"], 16000, 0.5)
    assert len(set(slices["song_id"])) == len(set(songs["test"]["song_id"])) == len(songs["test"]) // 2


def parquet_dataset(folder: Path, bad_row: bool = False) -> Path:
    """A parquet dataset whose audio column holds embedded bytes in mixed formats and rates, with three splits."""
    folder.mkdir(parents=True)
    formats = [("WAV", 16000), ("FLAC", 22050), ("OGG", 44100), ("MP3", 24000)]
    # The audio column as the Hub stores it (a struct of bytes and path); written without `datasets`' Audio encoder,
    # which needs torchcodec.
    audio = {"bytes": Value("binary"), "path": Value("string")}
    features = Features({"audio": audio, "label": ClassLabel(names=["low", "high"]), "song": Value("string")})
    for split, count in (("train", 8), ("validation", 4), ("test", 4)):
        rows = {"audio": [], "label": [], "song": []}
        for index in range(count):
            fmt, rate = formats[index % 4]
            label = index % 2
            data = encoded(fmt, rate, 300 if label == 0 else 1200)
            if bad_row and split == "test" and index == 2:
                data = b"these bytes are not audio" * 10
            rows["audio"].append({"bytes": data, "path": f"{split}_{index}.{fmt.lower()}"})
            rows["label"].append(label)
            rows["song"].append(f"{split}-{index}")
        Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"{split}-00000.parquet"))
    return folder


def test_parquet_with_embedded_bytes_in_mixed_formats_and_rates(tmp_path):
    folder = parquet_dataset(tmp_path / "parquet")
    songs = load_dataset_songs(str(folder), song_column="song", audio_dir=tmp_path / "audio")
    assert [len(songs[s]) for s in ("train", "validation", "test")] == [8, 4, 4]
    slices = genremert.slice_songs(songs, 16000, 1.0)
    for row in slices["test"]:
        assert row["input_values"].shape == (16000,) and np.isfinite(row["input_values"]).all()
    assert {Path(p).suffix for p in songs["train"]["audio"]} == {".wav", ".flac", ".ogg", ".mp3"}


def test_bad_rows_are_reported_by_split_and_index(tmp_path):
    folder = parquet_dataset(tmp_path / "parquet", bad_row=True)
    with pytest.raises(genremert.BadAudioFilesError, match=r"test\[2\] .*: not a readable audio file"):
        load_dataset_songs(str(folder), song_column="song", audio_dir=tmp_path / "audio")
    with pytest.warns(UserWarning, match=r"1 bad row"):
        songs = load_dataset_songs(str(folder), song_column="song", audio_dir=tmp_path / "audio", on_bad_file="skip")
    assert len(songs["test"]) == 3


def test_save_to_disk_folder(tmp_path):
    features = Features({"audio": Value("string"), "label": Value("string")})
    splits = {}
    for split, count in (("train", 6), ("validation", 3), ("test", 3)):
        paths = []
        for index in range(count):
            path = tmp_path / "audio" / f"{split}{index}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, tone(1.0, 8000, 200 + 100 * (index % 3)), 8000)
            paths.append(str(path))
        splits[split] = Dataset.from_dict(
            {"audio": paths, "label": [["a", "b", "c"][i % 3] for i in range(count)]}, features=features
        )
    DatasetDict(splits).save_to_disk(str(tmp_path / "saved"))
    # The paths lead outside the saved folder: refused naming each row, unless the user accepts them.
    with pytest.raises(
        genremert.BadAudioFilesError, match=r"train\[0\]: audio path .*train0.wav' lies outside the dataset folder"
    ):
        load_dataset_songs(str(tmp_path / "saved"))
    songs = load_dataset_songs(str(tmp_path / "saved"), allow_outside_paths=True)
    assert songs["train"].features["label"].names == ["a", "b", "c"] and len(songs["test"]) == 3


@pytest.mark.parametrize("seed", range(5))
def test_single_split_grouping_never_leaks_a_group(seed):
    rng = np.random.default_rng(seed)
    groups = [f"g{rng.integers(0, 30)}" for _ in range(400)]
    labels = [int(group[1:]) % 4 for group in groups]
    splits = group_split(labels, groups, (0.7, 0.15, 0.15), seed=seed)
    by_group = {}
    for group, split in zip(groups, splits):
        by_group.setdefault(group, set()).add(split)
    assert all(len(assigned) == 1 for assigned in by_group.values())
    for label in range(4):  # stratified: every label has groups in every split
        assert {s for s, owner in zip(splits, labels) if owner == label} == {"train", "validation", "test"}


# ----------------------------------------------------------------------------------------------------------------------
# GTZAN from the Hub, and archives
# ----------------------------------------------------------------------------------------------------------------------


def gtzan_archive(path: Path) -> Path:
    """A tiny genres.tar.gz in the real layout, with an AppleDouble file and the broken jazz.00054."""
    staging = path.parent / "staging"
    for g_index, genre in enumerate(genremert.GTZAN_GENRES):
        folder = staging / "genres" / genre
        folder.mkdir(parents=True)
        for number in range(50, 60):
            sf.write(folder / f"{genre}.{number:05d}.wav", tone(0.3, 22050, 100 + 40 * g_index + number), 22050)
        (folder / f"._{genre}.00050.wav").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 50)
    (staging / "genres" / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    with tarfile.open(path, "w:gz") as archive:
        archive.add(staging / "genres", arcname="genres")
    shutil.rmtree(staging)
    return path


def test_gtzan_from_the_hub_against_a_stand_in_download(tmp_path, monkeypatch):
    import huggingface_hub

    archive = gtzan_archive(tmp_path / "hub" / "genres.tar.gz")
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs))
        return str(archive)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.warns(UserWarning, match="jazz.00054"):
        songs = genremert.load_gtzan(split="random", gtzan_revision="abc123")
    assert calls[0][:2] == ("marsyas/gtzan", "data/genres.tar.gz")
    assert calls[0][2]["repo_type"] == "dataset" and calls[0][2]["revision"] == "abc123"
    assert sum(len(songs[s]) for s in songs) == 99  # 100 clips, the broken one reported and skipped
    extracted = archives.extracted_folder(archive)
    assert (extracted / archives.COMPLETE_MARKER).is_file()
    # Extracted once: a second load reuses the folder.
    stamp = (extracted / "genres" / "blues" / "blues.00050.wav").stat().st_mtime_ns
    with pytest.warns(UserWarning):
        genremert.load_gtzan(split="random")
    assert (extracted / "genres" / "blues" / "blues.00050.wav").stat().st_mtime_ns == stamp
    # --data_dir may be the archive itself.
    local = gtzan_archive(tmp_path / "local" / "genres.tar.gz")
    with pytest.warns(UserWarning):
        assert len(genremert.load_gtzan(local, split="random")["test"]) > 0


def test_an_interrupted_extraction_is_never_taken_for_a_complete_one(tmp_path, monkeypatch):
    archive = gtzan_archive(tmp_path / "genres.tar.gz")
    target = tmp_path / "out"
    real_copy = archives._copy_limited
    copied = []

    def killed_midway(source, sink, name, *rest):
        if len(copied) == 20:
            raise KeyboardInterrupt
        copied.append(name)
        return real_copy(source, sink, name, *rest)

    monkeypatch.setattr(archives, "_copy_limited", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        archives.extract_archive(archive, target)
    assert not target.exists() and not list(tmp_path.glob("out.partial-*"))  # nothing half-done is left at all
    monkeypatch.setattr(archives, "_copy_limited", real_copy)
    archives.extract_archive(archive, target)
    assert (target / archives.COMPLETE_MARKER).is_file()
    assert len(list((target / "genres").rglob("*.wav"))) == 100 + 10  # with the AppleDouble files
    # A folder without the marker (left by an older version, or the user's own) is never reused nor deleted.
    (tmp_path / "other" / "genres").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="no .genremert-extracted marker"):
        archives.extract_archive(archive, tmp_path / "other")
    assert (tmp_path / "other" / "genres").is_dir()


@pytest.mark.parametrize("member", ["../outside.txt", "/abs/path.txt", "symlink"])
def test_malicious_archive_members_are_refused(tmp_path, member):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        info = tarfile.TarInfo("genres/ok.txt")
        info.size = 2
        handle.addfile(info, io.BytesIO(b"ok"))
        if member == "symlink":
            info = tarfile.TarInfo("genres/link")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            handle.addfile(info)
        else:
            info = tarfile.TarInfo(member)
            info.size = 1
            handle.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(archives.UnsafeArchiveError, match="refusing"):
        archives.extract_archive(archive, tmp_path / "target")
    assert not (tmp_path / "target").exists() and not (tmp_path / "outside.txt").exists()


# ----------------------------------------------------------------------------------------------------------------------
# End to end, and the same songs / slices / metrics as the dedicated loader
# ----------------------------------------------------------------------------------------------------------------------


def test_run_classification_on_a_parquet_dataset_and_its_pipeline(tmp_path):
    from test_run_classification import TINY_CRNN
    from transformers import pipeline

    folder = parquet_dataset(tmp_path / "parquet")
    output_dir = tmp_path / "run"
    results = run.main(
        [
            "--model_type", "crnn_fgnl", "--dataset_name", str(folder), "--song_column_name", "song",
            "--data_dir", str(tmp_path / "cache"), "--slice_seconds", "1.0", "--config_overrides", TINY_CRNN,
            "--num_train_epochs", "2", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3",
            "--report_to", "none", "--output_dir", str(output_dir), "--do_train", "--do_eval", "--do_predict",
        ]
    )  # fmt: skip
    assert results["dataset"] == "custom" and 0.0 <= results["test_song_accuracy"] <= 1.0
    assert results["test_num_songs"] == 4
    classifier = pipeline("audio-classification", model=str(output_dir), trust_remote_code=True)
    answer = classifier({"array": tone(1.5, 44100, 300), "sampling_rate": 44100}, top_k=2)
    assert {entry["label"] for entry in answer} == {"low", "high"}
    # interpret.py on the same run: the dataset settings and the saved split come from the run folder.
    from genremert.analysis import cli as interpret_cli

    assert interpret_cli.main(["--model_dir", str(output_dir), "--output_dir", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "interpretation.json").is_file()


def test_the_generic_path_gives_the_dedicated_loaders_songs_slices_and_predictions(tmp_path):
    import torch
    from tiny_configs import tiny_crnn_fgnl_config

    from genremert import CRNNFGNLForAudioClassification, build_feature_extractor

    archive = gtzan_archive(tmp_path / "genres.tar.gz")
    tree = archives.extract_archive(archive, tmp_path / "tree")
    (tree / "genres" / "jazz" / "jazz.00054.wav").unlink()  # both paths would skip it; the generic one raises
    dedicated = genremert.load_gtzan(tree, split="random", seed=4)
    split_file = tmp_path / "split.json"
    split_file.write_text(
        json.dumps({"groups": {sid: split for split in dedicated for sid in dedicated[split]["song_id"]}})
    )
    generic = load_dataset_songs(str(tree / "genres"), split_file=split_file)
    for split in ("train", "validation", "test"):
        assert generic[split]["song_id"] == dedicated[split]["song_id"]
        assert generic[split]["label"] == dedicated[split]["label"]
    assert generic["train"].features["label"].names == list(genremert.GTZAN_GENRES)
    torch.manual_seed(0)
    model = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config(num_labels=10)).eval()
    extractor = build_feature_extractor(model.config)
    outputs = []
    for songs in (dedicated, generic):
        slices = genremert.slice_songs(songs["test"], 16000, 0.25)
        batch = extractor([row["input_values"] for row in slices], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            outputs.append(model(batch["input_values"]).logits)
    assert torch.equal(outputs[0], outputs[1])


def test_a_csv_of_paths_and_labels(tmp_path):
    """The README's third case: a folder holding one CSV with relative paths and labels."""
    (tmp_path / "data" / "clips").mkdir(parents=True)
    lines = ["path,genre"]
    for index in range(12):
        sf.write(tmp_path / "data" / "clips" / f"c{index}.wav", tone(1.0, 16000, 200 + 90 * (index % 3)), 16000)
        lines.append(f"clips/c{index}.wav,{'abc'[index % 3]}")
    (tmp_path / "data" / "songs.csv").write_text("\n".join(lines) + "\n")
    songs = load_dataset_songs(str(tmp_path / "data"), audio_column="path", label_column="genre")
    assert [len(songs[s]) for s in ("train", "validation", "test")] == [6, 3, 3]
    assert all(Path(p).is_file() for p in songs["test"]["audio"])


def test_zip_archives_extract_and_refuse_paths_outside(tmp_path):
    import zipfile

    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as handle:
        handle.writestr("genres/blues/blues.00001.txt", "x")
        handle.writestr("genres/empty/", "")
    target = archives.extract_archive(good, tmp_path / "good")
    assert (target / "genres" / "blues" / "blues.00001.txt").read_text() == "x" and (
        target / "genres" / "empty"
    ).is_dir()
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as handle:
        handle.writestr("../escape.txt", "x")
    with pytest.raises(archives.UnsafeArchiveError, match="outside the folder"):
        archives.extract_archive(bad, tmp_path / "bad")
    assert not (tmp_path / "escape.txt").exists()
