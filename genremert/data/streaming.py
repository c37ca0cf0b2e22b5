"""Streamed training data: `run_classification.py --dataset_name X --streaming` trains on a dataset read shard by shard,
never downloaded or decoded whole, so memory stays flat whatever the number of songs.

The training split is a `datasets.IterableDataset` (`datasets.load_dataset(..., streaming=True)`: a Hub id, or a local
folder of parquet / arrow / json / csv files or WebDataset `.tar` shards). It is

1. resharded by parquet row group (arrow would read a whole file's row groups at once: memory would follow the shards'
   size) and split between the processes with `datasets.distributed.split_dataset_by_node` (the run's rank and world
   size): whole shards per process, or every `world_size`-th slice when there are fewer shards than processes;
2. cut into slices on the fly (:class:`SongSlicer`): each song is decoded once by `audio_genremert.decode_audio` (soundfile
   / soxr, never torchcodec) and cut by `slice_starts` / `cut_slices`, the one slicing rule of training, evaluation and
   the pipeline;
3. shuffled with a seeded buffer of `shuffle_buffer_size` slices (and the shard order with the same seed, identical on
   every process, so the processes' shards stay disjoint), reshuffled in each pass with `set_epoch(pass)`.

:class:`StreamedSlices` repeats the passes without end, so every process yields batches until `--max_steps` and no
process reaches the end of its part (of another length than the others') while the others wait in a collective.

Evaluation stays exact and uses the non-streamed path: the validation and test splits (small) are streamed once,
their audio written to content-addressed files (:func:`materialise_songs`, as `load_dataset_songs` does), checked,
and sliced by `slice_songs`, so each song's slices are voted together as in any other run.

Labels: a `ClassLabel` column (or a list of them: multi-label tags) carries its names; strings and plain numbers are
looked up in `class_names` (`--class_names`), since a stream cannot be read whole to collect them. A label outside the
list is an error naming the song and the column.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, IterableDataset, Value
from datasets import List as ListFeature
from datasets.distributed import split_dataset_by_node

from audio_genremert import AudioDecodeError, cut_slices, decode_audio, slice_samples_of, slice_starts

from .audio_files import BadAudioFile, BadAudioFilesError, validate_audio_files
from .your_data import DATA_FILE_SUFFIXES, SPLIT_FOLDERS, _inside, _materialise, split_of_data_file


STREAM_FILE_SUFFIXES = {**DATA_FILE_SUFFIXES, ".tar": "webdataset"}
DEFAULT_SHUFFLE_BUFFER_SIZE = 1000  # slices held for the shuffle: 1000 × 3 s at 16 kHz float32 = 192 MB


# ============================================================================================= #
# Labels
# ============================================================================================= #


def parse_class_names(text: Optional[str]) -> Optional[List[str]]:
    """`--class_names`: `"rock,jazz,pop"` or a JSON list (`'["rock", "jazz"]'`), in class-id order; None stays None."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    names = json.loads(text) if text.startswith("[") else [part.strip() for part in text.split(",")]
    if not names or any(not isinstance(name, str) or not name for name in names):
        raise ValueError(f"--class_names {text!r}: expected non-empty class names, 'a,b,c' or a JSON list of strings.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"--class_names {text!r}: the names {repeated} appear more than once; each class once.")
    return names


@dataclass(frozen=True)
class StreamLabels:
    """The label list of a stream and how a label cell becomes class ids: a `ClassLabel` column's cells are ids
    already; any other cell (a string, a number) is looked up by its text in `names`."""

    column: str
    names: Tuple[str, ...]
    multi_label: bool
    cells_are_ids: bool

    def encode(self, value, song: str) -> Union[int, List[int]]:
        """The class id (or, multi-label, the list of tag ids) of a label cell of `song`; a value outside the list is
        a `ValueError` naming the song, the column, the value and the list."""
        if value is None:
            raise ValueError(f"song {song}: no label in the column {self.column!r}.")
        if self.multi_label:
            if not isinstance(value, (list, tuple)):
                raise ValueError(
                    f"song {song}: the label column {self.column!r} holds {value!r}; a multi-label (tag) dataset "
                    "needs a list of tags in every row."
                )
            return [self._one(tag, song) for tag in value]
        return self._one(value, song)

    def _one(self, value, song: str) -> int:
        if self.cells_are_ids and isinstance(value, (int, np.integer)) and 0 <= int(value) < len(self.names):
            return int(value)
        text = str(value)
        if not self.cells_are_ids and text in self.names:
            return self.names.index(text)
        shown = list(self.names) if len(self.names) <= 20 else [*self.names[:20], "..."]
        expected = (
            f"a class id in [0, {len(self.names)}) of the column's ClassLabel; fix the row"
            if self.cells_are_ids
            else "one of these names (--class_names): list every class there, or fix the row"
        )
        raise ValueError(
            f"song {song}: the label {value!r} of the column {self.column!r} is not in the label list {shown}; "
            f"expected {expected}."
        )

    @property
    def feature(self):
        """The `label` feature of the materialised songs: a `ClassLabel`, or a list of them (tags)."""
        classes = ClassLabel(names=list(self.names))
        return ListFeature(classes) if self.multi_label else classes


def stream_labels(features: Optional[Features], column: str, class_names: Optional[Sequence[str]]) -> StreamLabels:
    """The labels of a stream whose features are `features` (None: not declared, read as strings or numbers)."""
    feature = None if features is None else features.get(column.split(".")[0])
    if feature is not None and "." in column:  # a field inside a struct column (a WebDataset's `json.genre`)
        for part in column.split(".")[1:]:
            feature = feature.get(part) if isinstance(feature, dict) else None
    inner = getattr(feature, "feature", None) if not isinstance(feature, list) else feature[0]
    multi_label = inner is not None or isinstance(feature, list)
    declared = inner if multi_label else feature
    if isinstance(declared, ClassLabel):
        if class_names is not None and list(class_names) != list(declared.names):
            raise ValueError(
                f"--class_names {list(class_names)} differs from the classes of the column {column!r} "
                f"({declared.names}); leave --class_names out (the column names its classes) or make them equal."
            )
        return StreamLabels(column, tuple(declared.names), multi_label, cells_are_ids=True)
    if class_names is None:
        raise ValueError(
            f"--streaming: the label column {column!r} holds {declared or 'undeclared values'}, not a ClassLabel, and "
            "a stream cannot be read whole to collect its classes: give them with --class_names (e.g. "
            "--class_names rock,jazz,pop; the order is the class ids')."
        )
    return StreamLabels(column, tuple(class_names), multi_label, cells_are_ids=False)


# ============================================================================================= #
# Opening a stream
# ============================================================================================= #


def open_streamed_splits(
    name: str, config_name: Optional[str] = None, revision: Optional[str] = None, cache_dir: Optional[str] = None
) -> Tuple[Dict[str, IterableDataset], Optional[Path]]:
    """`({split: IterableDataset}, the folder audio paths are relative to)` of a local folder of data files (split by
    the split words of their names, as `load_dataset_songs`: `train-00000.parquet`, `validation/part.tar`) or a Hub
    dataset id (folder `None`). Audio columns are read undecoded: `{"bytes", "path"}` cells or raw bytes."""
    import datasets

    path = Path(name)
    root = None
    if path.is_dir():
        root = path
        by_split: Dict[str, List[str]] = {}
        kinds = set()
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            kind = STREAM_FILE_SUFFIXES.get(file.suffix.lower())
            if kind is not None:
                kinds.add(kind)
                split, _ = split_of_data_file(file.relative_to(path))
                by_split.setdefault(split, []).append(str(file))
        if len(kinds) != 1:
            raise ValueError(
                f"--dataset_name {name} --streaming: expected data files of one kind (parquet, arrow, json, csv, or "
                f"WebDataset .tar shards), found {sorted(kinds) or 'none'}."
            )
        kind = kinds.pop()

        def load(features=None):
            return datasets.load_dataset(kind, data_files=by_split, streaming=True, features=features)
    elif path.exists():
        raise ValueError(f"--dataset_name {name}: a file; give the folder that holds it (or a Hub dataset id).")
    else:

        def load(features=None):
            return datasets.load_dataset(
                name, config_name, revision=revision, cache_dir=cache_dir, streaming=True, features=features
            )

    splits = dict(load())
    for split, stream in list(splits.items()):
        audio = [column for column, feature in (stream.features or {}).items() if isinstance(feature, Audio)]
        if audio and "__key__" in stream.features:
            # WebDataset shards: the builder encodes audio through torchcodec; read the audio files' bytes instead.
            binary = Features({c: Value("binary") if c in audio else f for c, f in stream.features.items()})
            splits[split] = load(binary)[split]
        else:
            for column in audio:  # decoded here by soundfile, never by `datasets` (torchcodec)
                splits[split] = splits[split].cast_column(column, Audio(decode=False))
    return splits, root


def _cell(row: dict, column: str):
    """A row's value of `column`, or of a field inside a struct column (`json.genre`)."""
    if column in row or "." not in column:
        return row.get(column)
    value = row.get(column.split(".")[0])
    for part in column.split(".")[1:]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _audio_source(cell, song: str, base_dir: Optional[Path], allow_outside: bool):
    """The bytes or the file path of a row's audio cell (a path relative to the dataset's folder, checked as in
    `load_dataset_songs`)."""
    if isinstance(cell, (bytes, bytearray)):
        return bytes(cell)
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return cell["bytes"]
        cell = cell.get("path")
    if not isinstance(cell, str) or not cell:
        raise AudioDecodeError(f"song {song}: the audio cell holds neither bytes nor a path.")
    if base_dir is None:
        if not allow_outside:
            raise AudioDecodeError(
                f"song {song}: audio path {cell!r} of a dataset without a folder: only embedded audio (bytes) is "
                "read from it; pass --allow_paths_outside_dataset to read this path."
            )
        return cell
    path = cell if os.path.isabs(cell) else str(base_dir / cell)
    if not allow_outside and not _inside(path, base_dir):
        raise AudioDecodeError(
            f"song {song}: audio path {cell!r} lies outside the dataset folder {base_dir}; pass "
            "--allow_paths_outside_dataset to read it."
        )
    return path


def song_id_of(row: dict, audio_column: str, song_column: Optional[str], split: str) -> str:
    """A streamed row's song: its song column, else its audio file's stem (the WebDataset key), else a hash of its
    audio bytes (the same song in every pass and process)."""
    if song_column:
        return str(_cell(row, song_column))
    cell = row.get(audio_column)
    path = cell.get("path") if isinstance(cell, dict) else cell if isinstance(cell, str) else None
    if path:
        return Path(path).stem
    if row.get("__key__"):
        return str(row["__key__"])
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    return f"{split}:{hashlib.sha1(bytes(data or b'')).hexdigest()[:16]}"


# ============================================================================================= #
# Slices on the fly
# ============================================================================================= #


class SongSlicer:
    """The batched `IterableDataset.map` function of a song stream: every song in, its slices out (`input_values`
    float32 `(slice_samples,)` at `sampling_rate`, `label`, `song_id`). Each song is decoded once, and its slices are
    cut by `slice_starts` / `cut_slices` with the run's remainder rule (a song shorter than one slice: zero-padded)."""

    def __init__(
        self,
        labels: StreamLabels,
        audio_column: str,
        song_column: Optional[str],
        sampling_rate: int,
        slice_seconds: float,
        overlap_seconds: float = 0.0,
        remainder: str = "drop",
        base_dir: Optional[Path] = None,
        allow_outside: bool = False,
        split: str = "train",
    ):
        self.labels, self.audio_column, self.song_column = labels, audio_column, song_column
        self.sampling_rate, self.remainder, self.split = int(sampling_rate), remainder, split
        self.slice_samples, self.hop_samples = slice_samples_of(slice_seconds, overlap_seconds, self.sampling_rate)
        self.base_dir, self.allow_outside = base_dir, allow_outside

    def __call__(self, batch: Dict[str, list]) -> Dict[str, list]:
        output = {"input_values": [], "label": [], "song_id": []}
        for index in range(len(batch[self.audio_column])):
            row = {column: values[index] for column, values in batch.items()}
            song_id = song_id_of(row, self.audio_column, self.song_column, self.split)
            song = f"{song_id!r} ({self.split} split)"
            label = self.labels.encode(_cell(row, self.labels.column), song)
            source = _audio_source(row[self.audio_column], song, self.base_dir, self.allow_outside)
            waveform = decode_audio(source, self.sampling_rate, name=f"song {song}")  # (samples,)
            starts = slice_starts(len(waveform), self.slice_samples, self.hop_samples, self.remainder)
            output["input_values"] += list(cut_slices(waveform, starts, self.slice_samples))  # each (slice_samples,)
            output["label"] += [label] * len(starts)
            output["song_id"] += [song_id] * len(starts)
        return output


def _columns_read(stream: IterableDataset, *columns: Optional[str]) -> List[str]:
    """The top-level columns the slicer reads (the rest is never decoded from the shards)."""
    wanted = {column.split(".")[0] for column in columns if column}
    if stream.features is not None and "__key__" in stream.features:
        wanted.add("__key__")
    missing = sorted(wanted - set(stream.column_names or wanted))
    if missing:
        raise ValueError(
            f"--streaming: no column(s) {missing} in the stream (columns: {stream.column_names}); set "
            "--audio_column_name / --label_column_name / --song_column_name."
        )
    return sorted(wanted)


def stream_slices(
    songs: IterableDataset,
    slicer: SongSlicer,
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER_SIZE,
) -> IterableDataset:
    """One process's slices of a song stream: one shard per parquet row group, `split_dataset_by_node(rank,
    world_size)`, the songs sliced by `slicer`, then shuffled with a seeded buffer of `shuffle_buffer_size` slices, filled
    from up to 10 shards at once (the shard order shuffled with the same seed on every process: the split stays
    disjoint). `set_epoch(n)` reshuffles pass `n`."""
    if shuffle_buffer_size < 1:
        raise ValueError(f"--shuffle_buffer_size must be >= 1, got {shuffle_buffer_size}.")
    columns = _columns_read(songs, slicer.audio_column, slicer.labels.column, slicer.song_column)
    # One shard per parquet row group: arrow reads a whole file's row groups at once (memory grows with the shards'
    # size, not with the row groups'), and finer shards shuffle better and split more evenly.
    songs = songs.reshard().select_columns(columns)
    # Whole shards to each process, one more to some when they do not divide evenly (the passes are endless, so no
    # process waits for another); every `world_size`-th slice only with fewer shards than processes (each process then
    # decodes every song).
    strategy = "shards" if songs.num_shards >= world_size else "examples"
    mine = split_dataset_by_node(songs, rank=rank, world_size=world_size, strategy=strategy)
    sliced = mine.map(slicer, batched=True, batch_size=1, remove_columns=columns)
    return sliced.shuffle(seed=seed, buffer_size=shuffle_buffer_size)


class StreamedSlices(torch.utils.data.IterableDataset):
    """A process's training slices as an endless stream: pass after pass over its part of the corpus, each pass
    reshuffled (`slices.set_epoch(pass)`). Endless, so that processes whose parts differ in length all train
    `--max_steps` steps in step with each other, and the Trainer's one "epoch" is the whole run. In DataLoader workers,
    `datasets` deals the shards between the workers."""

    def __init__(self, slices: IterableDataset, description: str = "the stream"):
        super().__init__()
        self.slices, self.description, self.epoch = slices, description, 0

    def set_epoch(self, epoch: int) -> None:
        """The first pass's number (the Trainer's epoch; later passes count on from it)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[dict]:
        worker = torch.utils.data.get_worker_info()
        epoch = self.epoch
        while True:
            self.slices.set_epoch(epoch)
            produced = False
            for row in self.slices:
                produced = True
                yield row
            if not produced:
                if epoch == self.epoch and (worker is None or worker.id == 0):
                    raise ValueError(f"{self.description}: no slice in a whole pass (no song reached this process).")
                return  # a DataLoader worker without a shard
            epoch += 1


class UnindexedSongs(Mapping):
    """The song index of streamed training slices for `SliceCollator`: the songs of a stream are not known in advance
    and are never scored during training, so every song maps to -1 (song-level votes are counted on the evaluation
    splits, which have a real index)."""

    def __contains__(self, song_id) -> bool:
        return isinstance(song_id, str)

    def __getitem__(self, song_id: str) -> int:
        return -1

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


def streamed_dataloader(stream: StreamedSlices, batch_size: int, collate_fn, args) -> torch.utils.data.DataLoader:
    """The training DataLoader of a stream already split between the processes. accelerate's `prepare` would split
    it again (a `datasets.IterableDataset` by its shards, any other one by batches), so it is prepared as for one
    process: batches on `args.device`, `set_epoch` passed on, gradient accumulation told where the data ends."""
    from accelerate.data_loader import prepare_data_loader

    options = {"num_workers": args.dataloader_num_workers, "pin_memory": args.dataloader_pin_memory}
    if args.dataloader_num_workers > 0:
        options["persistent_workers"] = args.dataloader_persistent_workers
        options["prefetch_factor"] = args.dataloader_prefetch_factor
    loader = torch.utils.data.DataLoader(stream, batch_size=batch_size, collate_fn=collate_fn, **options)
    return prepare_data_loader(
        loader, device=args.device, num_processes=1, process_index=0, put_on_device=True, dispatch_batches=False
    )


# ============================================================================================= #
# The evaluation splits, materialised for the non-streamed path
# ============================================================================================= #


def materialise_songs(
    stream: IterableDataset,
    split: str,
    labels: StreamLabels,
    *,
    audio_column: str,
    song_column: Optional[str] = None,
    group_column: Optional[str] = None,
    audio_dir: Union[str, os.PathLike],
    base_dir: Optional[Path] = None,
    allow_outside: bool = False,
) -> Dataset:
    """An evaluation split of a stream as the song dataset of `load_dataset_songs` (`audio` file paths, `label`,
    `song_id`, `album`), for the non-streamed slicing and song-level scoring: embedded audio written once to
    content-addressed files in `audio_dir`, every file checked, bad rows reported together. Songs are named as there:
    the song column, else the file stems when unique, else `<split>/<row>`."""
    audio_dir = Path(audio_dir)
    entries, bad = [], []
    for index, row in enumerate(stream):
        where = f"{split}[{index}]"
        cell = row.get(audio_column)
        if isinstance(cell, (bytes, bytearray)):  # a WebDataset's raw bytes: named by its key
            cell = {"bytes": bytes(cell), "path": f"{row.get('__key__', index)}.{audio_column}"}
        path, reason = _materialise(cell, audio_dir, base_dir, allow_outside)
        try:
            label = labels.encode(_cell(row, labels.column), where)
        except ValueError as error:
            bad.append(BadAudioFile(where, str(error)))
            continue
        if reason:
            bad.append(BadAudioFile(where, reason))
            continue
        song = str(_cell(row, song_column)) if song_column else None
        group = str(_cell(row, group_column)) if group_column else None
        entries.append({"index": index, "path": path, "label": label, "song_id": song, "album": group})
    if not entries and not bad:
        raise ValueError(f"--streaming: the {split} split holds no song.")
    stems = [Path(e["path"]).stem for e in entries]
    unique = len(set(stems)) == len(stems)
    for entry, stem in zip(entries, stems):
        entry["song_id"] = entry["song_id"] or (stem if unique else f"{split}/{entry['index']:06d}")
        entry["album"] = entry["album"] or entry["song_id"]
    bad += [BadAudioFile(f"{split} {b.path}", b.reason) for b in validate_audio_files([e["path"] for e in entries])]
    if bad:
        raise BadAudioFilesError(f"--streaming, the {split} split", bad)
    entries.sort(key=lambda e: (e["song_id"], e["index"]))
    features = Features(
        {"audio": Value("string"), "label": labels.feature, "song_id": Value("string"), "album": Value("string")}
    )
    columns = {key: [e["path" if key == "audio" else key] for e in entries] for key in features}
    return Dataset.from_dict(columns, features=features)


@dataclass
class StreamedSongs:
    """What `load_streamed_songs` gives a run: the training split as a song stream (undecoded), the evaluation
    splits as song datasets, and the labels."""

    train: IterableDataset
    songs: DatasetDict  # validation, test (materialised)
    labels: StreamLabels
    base_dir: Optional[Path]


def load_streamed_songs(
    name: str,
    config_name: Optional[str] = None,
    *,
    audio_column: str = "audio",
    label_column: str = "label",
    song_column: Optional[str] = None,
    group_column: Optional[str] = None,
    class_names: Optional[Sequence[str]] = None,
    train_split: str = "train",
    validation_split: str = "validation",
    test_split: str = "test",
    audio_dir: Union[str, os.PathLike, None] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
    allow_outside_paths: bool = False,
) -> StreamedSongs:
    """The splits of `name` for a streamed run: `train` stays a stream; `validation` and `test` are read once into
    song datasets (see `materialise_songs`). The dataset must have its own validation and test splits (a stream
    cannot be split by group and stratified by label without reading it whole)."""
    streams, root = open_streamed_splits(name, config_name, revision, cache_dir)
    wanted = {"train": train_split, "validation": validation_split, "test": test_split}
    missing = [theirs for theirs in wanted.values() if theirs not in streams]
    if missing:
        raise ValueError(
            f"--dataset_name {name} --streaming: no split(s) {missing} (splits: {sorted(streams)}; a local file's split "
            f"is the word {sorted(SPLIT_FOLDERS)} in its name or folder). A streamed dataset needs its own train, "
            "validation and test splits; name them with --train_split_name / --validation_split_name / "
            "--test_split_name, or train without --streaming (which splits a single split by group)."
        )
    labels = stream_labels(streams[train_split].features, label_column, class_names)
    if audio_dir is None:
        audio_dir = Path(cache_dir or os.path.expanduser("~/.cache/genremert")) / "embedded_audio"
    songs = DatasetDict(
        {
            ours: materialise_songs(
                streams[theirs],
                theirs,
                labels,
                audio_column=audio_column,
                song_column=song_column,
                group_column=group_column,
                audio_dir=audio_dir,
                base_dir=root,
                allow_outside=allow_outside_paths,
            )
            for ours, theirs in wanted.items()
            if ours != "train"
        }
    )
    return StreamedSongs(streams[train_split], songs, labels, root)
