"""`--streaming`: the training split as a `datasets.IterableDataset` of local parquet / WebDataset shards, split
between processes, sliced on the fly, shuffled with a seeded buffer; evaluation exact and equal to the non-streamed
path's. Everything offline, on a few dozen one-second songs."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from genremert.data.streaming import (
    SongSlicer,
    StreamedSlices,
    load_streamed_songs,
    open_streamed_splits,
    stream_labels,
    stream_slices,
)
from genremert.training import run


GENRES = ["high", "low", "mid"]  # sorted: the class ids the non-streamed path gives string labels
FREQUENCIES = {"low": 220.0, "mid": 660.0, "high": 1760.0}
TINY_CRNN = "n_fft=512,hop_length=256,num_mel_bins=32,conv_channels=[4,8,8,8],fgnl_reduction=2,mose_hidden_size=4,gru_hidden_size=8"


@pytest.fixture(autouse=True)
def no_pause_after_each_pass(monkeypatch):
    """datasets waits 5 s after each pass over parquet shards read by threads (apache/arrow#45214: threads still
    reading at interpreter exit); these tests make a dozen passes and never exit in between."""
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


def wav_bytes(frequency: float, seed: int, seconds: float = 1.5, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def write_corpus(folder: Path, counts=None, shards=None, odd_label=None) -> dict:
    """Parquet shards `<split>-0000k.parquet` of songs `{split}_{i}.wav` (audio as the Hub stores it: a struct of
    bytes and path) with a string `genre` column; returns the song ids per split. `odd_label`: (split, row, label)."""
    counts = counts or {"train": 24, "validation": 6, "test": 6}
    shards = shards or {"train": 4, "validation": 1, "test": 1}
    folder.mkdir(parents=True, exist_ok=True)
    songs = {}
    for split, count in counts.items():
        rows = []
        for index in range(count):
            genre = GENRES[index % 3]
            if odd_label and odd_label[:2] == (split, index):
                genre = odd_label[2]
            audio = {"bytes": wav_bytes(FREQUENCIES.get(genre, 440.0), index), "path": f"{split}_{index}.wav"}
            rows.append({"audio": audio, "genre": genre})
        songs[split] = [f"{split}_{index}" for index in range(count)]
        for shard in range(shards[split]):
            part = rows[shard :: shards[split]]
            pq.write_table(pa.Table.from_pylist(part), folder / f"{split}-{shard:05d}.parquet", row_group_size=4)
    return songs


def slicer_of(stream, class_names=GENRES, column="genre", audio="audio"):
    labels = stream_labels(stream.features, column, class_names)
    return SongSlicer(labels, audio, None, sampling_rate=16000, slice_seconds=0.5)


def one_pass(slices) -> list:
    return [(row["song_id"], row["label"], hashlib.sha1(row["input_values"].tobytes()).hexdigest()) for row in slices]


def test_a_streamed_run_trains_max_steps_and_scores_songs_as_the_non_streamed_path(tmp_path):
    folder = tmp_path / "corpus"
    write_corpus(folder)
    common = [
        "--model_type", "crnn_fgnl", "--dataset_name", str(folder), "--label_column_name", "genre",
        "--data_dir", str(tmp_path / "cache"), "--slice_seconds", "0.5", "--report_to", "none",
        "--per_device_eval_batch_size", "8", "--do_eval", "--do_predict",
    ]  # fmt: skip
    streamed_dir = tmp_path / "streamed"
    streamed = run.main(
        common
        + ["--streaming", "--class_names", ",".join(GENRES), "--shuffle_buffer_size", "16", "--max_steps", "5"]
        + ["--config_overrides", TINY_CRNN, "--per_device_train_batch_size", "8", "--learning_rate", "3e-3"]
        + ["--do_train", "--output_dir", str(streamed_dir)]
    )
    assert json.loads((streamed_dir / "trainer_state.json").read_text())["global_step"] == 5
    assert "train_songs" not in streamed and streamed["eval_num_songs"] == 6 and streamed["test_num_songs"] == 6
    # The trained model, evaluated by the non-streamed path on the same validation and test songs.
    plain = run.main(common + ["--model_name_or_path", str(streamed_dir), "--output_dir", str(tmp_path / "plain")])
    scores = [key for key in streamed if key.startswith(("eval_song", "test_song", "eval_frame", "test_frame"))]
    assert len(scores) >= 8
    assert {key: streamed[key] for key in scores} == {key: plain[key] for key in scores}


def test_split_dataset_by_node_gives_disjoint_parts_covering_the_corpus(tmp_path):
    songs = write_corpus(tmp_path / "corpus")
    train = open_streamed_splits(str(tmp_path / "corpus"))[0]["train"]
    slicer = slicer_of(train)
    whole = one_pass(stream_slices(train, slicer, seed=3, shuffle_buffer_size=8))
    assert {song for song, _, _ in whole} == set(songs["train"]) and len(whole) == 3 * len(songs["train"])
    assert train.reshard().num_shards == 8  # 4 files of 2 row groups: one shard per row group
    for world_size in (2, 3, 9):  # whole shards per rank (evenly, one more to some); 9 > 8 shards: every 9th slice
        parts = [
            one_pass(stream_slices(train, slicer, rank=rank, world_size=world_size, seed=3, shuffle_buffer_size=8))
            for rank in range(world_size)
        ]
        assert all(parts) and sorted(sum(parts, [])) == sorted(whole)
        songs_per_rank = [{song for song, _, _ in part} for part in parts]
        if world_size < 9:  # whole shards: a song's slices stay on one rank
            assert sum(len(songs) for songs in songs_per_rank) == len(songs["train"])


def test_the_shuffle_is_deterministic_given_the_seed_and_changes_with_the_pass(tmp_path):
    write_corpus(tmp_path / "corpus")
    train = open_streamed_splits(str(tmp_path / "corpus"))[0]["train"]
    slicer = slicer_of(train)
    first, again, other = (one_pass(stream_slices(train, slicer, seed=s, shuffle_buffer_size=16)) for s in (0, 0, 1))
    assert first == again and first != other and sorted(first) == sorted(other)
    endless = iter(StreamedSlices(stream_slices(train, slicer, seed=0, shuffle_buffer_size=16)))
    passes = [[next(endless)["song_id"] for _ in range(len(first))] for _ in range(2)]
    assert passes[0] == [song for song, _, _ in first] and passes[1] != passes[0]
    assert sorted(passes[1]) == sorted(passes[0])  # the second pass: the same slices, reshuffled (set_epoch(1))


def test_max_steps_is_required_and_a_label_outside_the_list_names_the_song_and_column(tmp_path):
    write_corpus(tmp_path / "corpus", odd_label=("train", 5, "polka"))
    flags = ["--dataset_name", str(tmp_path / "corpus"), "--streaming", "--label_column_name", "genre"]
    with pytest.raises(ValueError, match=r"--streaming needs --max_steps"):
        run.main(flags + ["--do_train", "--output_dir", str(tmp_path / "out"), "--report_to", "none"])
    train = open_streamed_splits(str(tmp_path / "corpus"))[0]["train"]
    with pytest.raises(ValueError, match=r"song 'train_5' \(train split\): the label 'polka' of the column 'genre'"):
        one_pass(stream_slices(train, slicer_of(train), shuffle_buffer_size=4))
    with pytest.raises(ValueError, match=r"--class_names"):  # strings, and no list to look them up in
        stream_labels(train.features, "genre", None)


def test_webdataset_shards_and_multi_label_tags(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    tags = [["low"], ["mid", "high"], ["low", "high"], ["mid"]]
    for split in ("train", "validation", "test"):
        with tarfile.open(folder / f"{split}-000.tar", "w") as archive:
            for index, song_tags in enumerate(tags):
                members = {
                    f"{split}{index}.flac": wav_bytes(FREQUENCIES[song_tags[0]], index),
                    f"{split}{index}.json": json.dumps({"tags": song_tags}).encode(),
                }
                for name, payload in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    archive.addfile(info, io.BytesIO(payload))
    streamed = load_streamed_songs(
        str(folder), audio_column="flac", label_column="json.tags", class_names=GENRES, audio_dir=tmp_path / "audio"
    )
    assert streamed.labels.multi_label and len(streamed.songs["validation"]) == 4
    assert streamed.songs["test"].features["label"].feature.names == GENRES
    slices = one_pass(stream_slices(streamed.train, SongSlicer(streamed.labels, "flac", None, 16000, 0.5), seed=0))
    by_song = {song: label for song, label, _ in slices}
    assert by_song == {f"train{i}": [GENRES.index(t) for t in song_tags] for i, song_tags in enumerate(tags)}
