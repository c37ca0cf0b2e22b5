"""Your own data: any 🤗 `datasets` dataset (a Hub id or a local folder) as the song DatasetDict the project trains on.

`load_dataset_songs(name, ...)` accepts what `run_audio_classification.py` users have:

- an audio folder, with one sub-folder per label or a `metadata.csv` / `metadata.jsonl` (`file_name` plus label /
  song / group columns; JSON lines can hold a list of tags per file);
- parquet, arrow, json or csv files (a folder of them, or a Hub dataset stored that way), the audio column holding
  embedded bytes or paths; a file's split is the split word (train; validation, valid, val, dev; test) standing alone
  in its name or its folder's (`test-00000.parquet`, `test/part.csv`; not `contest.csv`, see `split_of_data_file`),
  else train;
- a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`;
- a Hub dataset id (`datasets.load_dataset`, with `config_name` and `revision`).

Audio is never decoded through `datasets` (torchcodec): the audio column is read undecoded (`Audio(decode=False)`),
embedded bytes are written once to content-addressed files in `audio_dir`, and every file is checked up front by the
project's own soundfile / soxr path (`audio_files.check_audio_file`), bad rows reported together by split, row index
and reason. Labels become a `ClassLabel` (strings: sorted names); a column mixing numbers and names is refused, and
single labels holding a comma or semicolon (tags written as one string) are warned about. Rows that are pieces of one
recording share a `song_column`; a `group_column` (album, artist) never straddles two splits. A dataset with only a
train split gets a seeded split stratified by label and grouped, written to `split_file` so that the run can be
repeated (a torn or malformed split file is refused, named, never overwritten).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, List, Sequence, Value

from .audio_files import AUDIO_SUFFIXES, BadAudioFile, BadAudioFilesError, validate_audio_files
from .songs import SPLITS


logger = logging.getLogger(__name__)

DATA_FILE_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json", ".csv": "csv"}


SPLIT_FOLDERS = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
_WORDS = re.compile(r"[^\W\d_]+")  # runs of letters: digits, `-`, `_`, `.`, spaces… separate words


def split_of_data_file(relative: Union[str, os.PathLike]) -> Tuple[str, Optional[str]]:
    """`(split, the word that chose it)` of a data file by its path inside the dataset folder: a split word
    (`SPLIT_FOLDERS`: train, validation / valid / val / dev, test) standing alone in its name (`test-00000.parquet`,
    `my_val_set.csv`, `test1.csv`), else in the name of the nearest folder holding it (`test/part-0.parquet`);
    `("train", None)` without one. Only whole words count: `contest_results.parquet`, `devices.csv` and
    `latest.csv` are train. A name with words of two different splits (`train_test.csv`) is refused."""
    relative = Path(relative)
    for part in (relative.stem, *reversed(relative.parent.parts)):
        words = sorted({word for word in _WORDS.findall(part.lower()) if word in SPLIT_FOLDERS})
        if len({SPLIT_FOLDERS[word] for word in words}) > 1:
            raise ValueError(
                f"data file {str(relative)!r}: {part!r} names the words {words} of different splits; expected at "
                "most one split word (train, validation / valid / val / dev, test) per name: rename the file or folder."
            )
        if words:
            return SPLIT_FOLDERS[words[0]], words[0]
    return "train", None


def _read_audio_folder(root: Path) -> DatasetDict:
    """An audio folder read without `datasets`' audiofolder builder (which encodes audio through torchcodec): a
    `metadata.csv` / `metadata.jsonl` (a `file_name` column plus any others), else one sub-folder per label. Top-level
    `train/`, `validation/` (`valid/`, `dev/`), `test/` folders are splits. Hidden files (`.x`, `._x`) are ignored."""
    import csv

    tops = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    split_dirs = (
        {name: root / name for name in tops if name in SPLIT_FOLDERS} if tops and tops <= set(SPLIT_FOLDERS) else {}
    )
    result = {}
    for split_name, folder in (split_dirs or {"train": root}).items():
        split = SPLIT_FOLDERS.get(split_name, split_name)
        metadata = next((folder / n for n in ("metadata.csv", "metadata.jsonl") if (folder / n).is_file()), None)
        if metadata is not None:
            if metadata.suffix == ".csv":
                with open(metadata, newline="", encoding="utf-8") as handle:
                    records = list(csv.DictReader(handle))
            else:
                records = [
                    json.loads(line) for line in metadata.read_text(encoding="utf-8").splitlines() if line.strip()
                ]
            if not records or "file_name" not in records[0]:
                raise ValueError(f"{metadata}: expected a `file_name` column naming each audio file.")
            columns = {key: [] for key in records[0] if key != "file_name"}
            columns["audio"] = []
            for row, record in enumerate(records):
                columns["audio"].append(str(folder / record["file_name"]))
                for key in columns:
                    if key != "audio":
                        columns[key].append(record.get(key))
        else:
            files = sorted(
                p
                for p in folder.rglob("*")
                if p.is_file()
                and p.suffix.lower() in AUDIO_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            )
            if not files:
                raise ValueError(f"{folder}: no audio file ({', '.join(AUDIO_SUFFIXES)}) and no metadata.csv.")
            columns = {"audio": [str(p) for p in files], "label": [p.parent.name for p in files]}
        result[split] = Dataset.from_dict(columns)
    return DatasetDict(result)


def _open_dataset(name: str, config_name: Optional[str], revision: Optional[str], cache_dir: Optional[str]):
    """`(raw DatasetDict, the folder its paths are relative to)` of a local folder (save_to_disk, data files, audio
    folder; the folder itself) or a Hub id (`None`: no folder; a Hub audio folder: its snapshot)."""
    import datasets

    path = Path(name)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            return (loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})), path
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        kinds = {DATA_FILE_SUFFIXES[p.suffix.lower()] for p in files if p.suffix.lower() in DATA_FILE_SUFFIXES}
        if (path / "metadata.csv").is_file():
            kinds.discard("csv")  # an audio folder's metadata, not a table of the dataset
        if (path / "metadata.jsonl").is_file():
            kinds.discard("json")  # the same, as JSON lines (which can hold list cells: tags)
        has_audio = any(p.suffix.lower() in AUDIO_SUFFIXES for p in files)
        if has_audio and not kinds:
            return _read_audio_folder(path), path
        if len(kinds) == 1:
            kind = kinds.pop()
            by_split = defaultdict(list)
            chosen, near_misses = [], []
            for p in sorted(files):
                if p.suffix.lower() in DATA_FILE_SUFFIXES:
                    relative = p.relative_to(path)
                    try:
                        split, word = split_of_data_file(relative)
                    except ValueError as error:
                        raise ValueError(f"--dataset_name {name}: {error}") from error
                    by_split[split].append(str(p))
                    chosen.append(f"{relative} -> {split}" + (f" (the word {word!r})" if word else " (no split word)"))
                    # Words once matched anywhere in a name (`val` never was: values, interval, evaluation).
                    inside = [w for w in ("test", "train", "valid", "dev") if w in p.stem.lower()] if not word else []
                    if inside:
                        near_misses.append(f"{relative} (contains {inside[0]!r})")
            logger.info("--dataset_name %s: data files by split: %s", name, "; ".join(chosen))
            if near_misses:
                warnings.warn(
                    f"--dataset_name {name}: {len(near_misses)} data file(s) hold a split word only inside a longer "
                    f"word and are read as train: {', '.join(near_misses)}. A file is a split's only when the word "
                    "stands alone in its name or its folder's (test-00000.parquet, my_val_set.csv, test/part.csv); "
                    f"the files by split: {'; '.join(chosen)}.",
                    stacklevel=3,
                )
            return datasets.load_dataset(kind, data_files=dict(by_split), cache_dir=cache_dir), path
        raise ValueError(
            f"--dataset_name {name}: a folder, but not one this project can read: expected audio files (with label "
            f"sub-folders or a metadata.csv), parquet/arrow/json/csv files of one kind (found {sorted(kinds) or 'none'}), "
            "or a save_to_disk folder."
        )
    if path.exists():
        raise ValueError(f"--dataset_name {name}: a file; give the folder that holds it (or a Hub dataset id).")
    try:
        loaded = datasets.load_dataset(name, config_name, revision=revision, cache_dir=cache_dir)
    except (ImportError, datasets.exceptions.DatasetGenerationError) as error:
        # A Hub audio folder: datasets would encode it through torchcodec. Fetch the files and read them here.
        if "torchcodec" not in repr(error) and "torchcodec" not in repr(error.__cause__):
            raise
        from huggingface_hub import snapshot_download

        local = snapshot_download(name, repo_type="dataset", revision=revision, cache_dir=cache_dir)
        return _open_dataset(local, config_name, None, cache_dir)
    return (loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})), None


def _inside(path: str, root: Path) -> bool:
    """Whether `path` lies inside `root` by its name (`..` and absolute paths elsewhere are outside; links the user
    put inside the dataset folder are the user's own choice and are followed)."""
    return os.path.normpath(os.path.abspath(path)).startswith(os.path.normpath(os.path.abspath(root)) + os.sep)


def _materialise(
    cell, audio_dir: Path, base_dir: Optional[Path] = None, allow_outside: bool = False
) -> Tuple[Optional[str], Optional[str]]:
    """`(path, None)` of a row's audio, or `(None, reason)`. Embedded bytes are written once, named by their hash.
    A path is taken relative to the dataset's folder `base_dir`, never to the current directory; one that lands outside
    it (absolute elsewhere, `../`) is refused unless `allow_outside`. Without a folder (a Hub dataset), only embedded
    audio is read, unless `allow_outside`."""
    if isinstance(cell, str):
        if not cell:
            return None, "empty audio path"
        if base_dir is None:
            if not allow_outside:
                return None, (
                    f"audio path {cell!r} of a dataset without a folder: only embedded audio (bytes) is read from it; "
                    "pass --allow_paths_outside_dataset to read this path"
                )
            return cell, None
        path = cell if os.path.isabs(cell) else str(base_dir / cell)
        if not allow_outside and not _inside(path, base_dir):
            return None, (
                f"audio path {cell!r} lies outside the dataset folder {base_dir}; pass --allow_paths_outside_dataset "
                "to read it"
            )
        return path, None
    if not isinstance(cell, dict):
        return None, f"audio cell of type {type(cell).__name__}, expected a path or {{'bytes', 'path'}}"
    data, source = cell.get("bytes"), cell.get("path")
    if data:
        digest = hashlib.sha1(data).hexdigest()
        suffix = Path(source or "").suffix.lower() or ".bin"
        target = audio_dir / digest[:2] / f"{digest}{suffix}"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_suffix(target.suffix + f".tmp{os.getpid()}")
            temporary.write_bytes(data)
            os.replace(temporary, target)
        return str(target), None
    if source:
        return _materialise(source, audio_dir, base_dir, allow_outside)
    return None, "the audio cell holds neither bytes nor a path"


def _is_list_feature(feature) -> bool:
    return isinstance(feature, (List, Sequence, list))


def _label_feature(splits: Dict[str, Dataset], column: str):
    """A `ClassLabel` (one class per row), or for a column of lists (tags) a `List(ClassLabel)`: multi-label. String
    labels become names sorted alphabetically."""
    features = [split.features[column] for split in splits.values() if column in split.features]
    if features and isinstance(features[0], ClassLabel):
        return features[0]
    if features and _is_list_feature(features[0]):
        inner = features[0].feature if not isinstance(features[0], list) else features[0][0]
        if isinstance(inner, ClassLabel):
            return List(inner)
        names = sorted({str(tag) for split in splits.values() for tags in split[column] if tags for tag in tags})
        return List(ClassLabel(names=names))
    names = sorted({str(value) for split in splits.values() for value in split[column]})
    return ClassLabel(names=names)


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TAG_SEPARATORS = (",", ";")


def _label_kind(value) -> str:
    """What a label cell is: a `number` (also a string that reads as one, as CSV gives it), a `name`, a `list`."""
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, str):
        return "number" if _NUMBER.fullmatch(value.strip()) else "name"
    if isinstance(value, (bool, int, float, np.number)):
        return "number"
    return type(value).__name__


def _check_label_values(name: str, present: Dict[str, Dataset], column: str, multi_label: bool) -> None:
    """Refuses a label column mixing kinds (numbers and names: `1` and `"rock"`, or lists and single labels), naming
    the column and examples of each kind; warns about single labels holding a comma or semicolon (`"rock,guitar"`:
    tags written as one string, taken as one class each). Class ids of a `ClassLabel` column are not checked."""
    kinds: Dict[str, list] = defaultdict(list)
    counts: Dict[str, int] = defaultdict(int)
    separated: Dict[str, str] = {}
    for split, data in present.items():
        feature = data.features[column]
        if isinstance(getattr(feature, "feature", feature), ClassLabel):
            continue
        for index, cell in enumerate(data.with_format(None)[column]):
            if cell is None:
                continue  # reported as a row without a label
            for value in cell if multi_label and isinstance(cell, (list, tuple)) else [cell]:
                kind = _label_kind(value)
                counts[kind] += 1
                if len(kinds[kind]) < 3:
                    kinds[kind].append(f"{split}[{index}]={value!r}")
                if (
                    not multi_label
                    and kind == "name"
                    and any(mark in value for mark in _TAG_SEPARATORS)
                    and value not in separated
                ):
                    separated[value] = f"{split}[{index}]"
    if len(kinds) > 1:
        found = "; ".join(f"{counts[kind]} {kind} label(s), e.g. {', '.join(kinds[kind])}" for kind in sorted(kinds))
        raise ValueError(
            f"--dataset_name {name}: the label column {column!r} mixes {' and '.join(sorted(kinds))}: {found}. "
            "Expected one kind in every row and split: all class names (strings) or all class ids (integers)"
            + (", each row a list of tags" if "list" in kinds else "")
            + "; write every label the same way."
        )
    if separated:
        examples = ", ".join(f"{where}={value!r}" for value, where in list(separated.items())[:3])
        warnings.warn(
            f"--dataset_name {name}: the label column {column!r} holds {len(separated)} label(s) with a comma or "
            f"semicolon, e.g. {examples}; each is read as one class of a single-label dataset. For multi-label tagging "
            'the column must hold a list per row (list cells, e.g. ["rock", "guitar"] in parquet, JSON lines or a '
            "metadata.jsonl), not a separated string.",
            stacklevel=3,
        )


def group_split(
    labels: list,
    groups: list,
    fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> list:
    """A split name per row: whole groups to train / validation / test, stratified by label (each label's groups are
    shuffled with `seed` and dealt out by `fractions`, at least one group to each split when the label has three)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}.")
    group_label = {}
    for label, group in zip(labels, groups):
        group_label.setdefault(group, label)
    rng = np.random.default_rng(seed)
    assignment = {}
    for label in sorted(set(group_label.values())):
        members = sorted(group for group, owner in group_label.items() if owner == label)
        members = [members[i] for i in rng.permutation(len(members))]
        n = len(members)
        n_test = max(1, int(round(fractions[2] * n))) if n >= 3 and fractions[2] > 0 else 0
        n_validation = max(1, int(round(fractions[1] * n))) if n >= 3 and fractions[1] > 0 else 0
        for rank, group in enumerate(members):
            assignment[group] = "test" if rank < n_test else "validation" if rank < n_test + n_validation else "train"
    return [assignment[group] for group in groups]


def load_dataset_songs(
    name: str,
    config_name: Optional[str] = None,
    *,
    audio_column: str = "audio",
    label_column: str = "label",
    song_column: Optional[str] = None,
    group_column: Optional[str] = None,
    train_split: str = "train",
    validation_split: str = "validation",
    test_split: str = "test",
    split_fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1),
    split_seed: int = 0,
    split_file: Optional[Union[str, os.PathLike]] = None,
    audio_dir: Optional[Union[str, os.PathLike]] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
    on_bad_file: str = "raise",
    num_workers: Optional[int] = None,
    allow_outside_paths: bool = False,
) -> DatasetDict:
    """Any `datasets` dataset as songs: `train`, `validation`, `test` with `audio` (a file path), `label`
    (`ClassLabel`; for a column of tag lists, `List(ClassLabel)`: multi-label tagging), `song_id` (the song column,
    else one song per row) and `album` (the group column, if any). A label column mixing numbers and names (`1`,
    `"rock"`) is refused; single labels holding a comma or semicolon (`"rock,guitar"`) are warned about.

    Splits come from the dataset (`train_split` etc.); with only a train split, whole groups (songs when there is no
    group column) are split by `split_fractions` with `split_seed`, stratified by label, and the assignment is written
    to `split_file` (JSON, reread when it exists: the same run gets the same split). Every file is checked first; bad
    rows are reported by split, row index and reason (`on_bad_file="raise"`, the default, or `"skip"`).

    Paths in a table (metadata.csv `file_name`, a CSV / parquet column of paths) are relative to the dataset's folder,
    never to the current directory; a path leading outside the folder (absolute elsewhere, `../`) is a bad row naming
    row and path, unless `allow_outside_paths` (`--allow_paths_outside_dataset`).
    """
    raw, root = _open_dataset(name, config_name, revision, cache_dir)
    wanted = {"train": train_split, "validation": validation_split, "test": test_split}
    for split in raw.values():
        missing = [c for c in (audio_column, label_column, song_column, group_column) if c and c not in split.features]
        if missing:
            raise ValueError(
                f"--dataset_name {name}: no column(s) {missing} (columns: {list(split.features)}); set "
                "--audio_column_name / --label_column_name / --song_column_name / --group_column_name."
            )
    if wanted["train"] not in raw:
        raise ValueError(f"--dataset_name {name}: no split {wanted['train']!r} (splits: {list(raw)}).")
    # An `Audio` column is read undecoded (paths / bytes); a string or {bytes, path} column is read as it is.
    raw = DatasetDict(
        {
            split: data.cast_column(audio_column, Audio(decode=False))
            if isinstance(data.features[audio_column], Audio)
            else data
            for split, data in raw.items()
        }
    )
    if audio_dir is None:
        audio_dir = Path(cache_dir or os.path.expanduser("~/.cache/genremert")) / "embedded_audio"
    audio_dir = Path(audio_dir)
    present = {our: raw[theirs] for our, theirs in wanted.items() if theirs in raw}
    train_feature = raw[wanted["train"]].features[label_column]
    _check_label_values(name, present, label_column, _is_list_feature(train_feature))
    label_feature = _label_feature(dict(raw), label_column)

    multi_label = isinstance(label_feature, List)
    source_feature = raw[wanted["train"]].features[label_column]
    source_is_class_label = isinstance(getattr(source_feature, "feature", source_feature), ClassLabel)
    tag_feature = label_feature.feature if multi_label else label_feature
    rows: Dict[str, list] = {}
    bad: list = []
    for our_split, data in present.items():
        table = data.with_format(None)
        labels = table[label_column]
        entries = []
        for index, cell in enumerate(table[audio_column]):
            path, reason = _materialise(cell, audio_dir, root, allow_outside_paths)
            label = labels[index]
            if label is None:
                bad.append(BadAudioFile(f"{our_split}[{index}]", f"no label in column {label_column!r}"))
                continue
            if multi_label:  # the row's tags: a list of tag ids (or names)
                label = [int(tag) if source_is_class_label else tag_feature.str2int(str(tag)) for tag in label]
            else:
                label = int(label) if source_is_class_label else label_feature.str2int(str(label))
            song = str(table[song_column][index]) if song_column else None
            group = str(table[group_column][index]) if group_column else None
            entries.append({"index": index, "path": path, "label": label, "song_id": song, "album": group})
            if reason:
                bad.append(BadAudioFile(f"{our_split}[{index}]", reason))
        rows[our_split] = entries

    # One song per row without a song column: named by the file's stem when stems are unique (`blues.00012`, as the
    # dedicated loaders), else by split and row.
    stems = [Path(e["path"]).stem for entries in rows.values() for e in entries if e["path"]]
    unique_stems = len(set(stems)) == len(stems)
    for split, entries in rows.items():
        for entry in entries:
            if entry["song_id"] is None:
                entry["song_id"] = (
                    Path(entry["path"]).stem if unique_stems and entry["path"] else f"{split}/{entry['index']:06d}"
                )
            if entry["album"] is None:
                entry["album"] = entry["song_id"]
    checked = validate_audio_files([e["path"] for entries in rows.values() for e in entries if e["path"]], num_workers)
    reasons = {b.path: b.reason for b in checked}
    for split, entries in rows.items():
        for entry in entries:
            if entry["path"] in reasons:
                bad.append(BadAudioFile(f"{split}[{entry['index']}] {entry['path']}", reasons[entry["path"]]))
    if bad:
        if on_bad_file == "raise":
            raise BadAudioFilesError(f"--dataset_name {name}", bad)
        warnings.warn(
            f"--dataset_name {name}: {len(bad)} bad row(s) skipped: " + "; ".join(f"{b.path}: {b.reason}" for b in bad),
            stacklevel=2,
        )
    bad_rows = {b.path.split(" ")[0] for b in bad}
    rows = {s: [e for e in entries if f"{s}[{e['index']}]" not in bad_rows] for s, entries in rows.items()}

    if set(rows) == {"train"}:  # tags: groups dealt out without stratification (a row has many labels)
        rows = _split_single(rows["train"], split_fractions, split_seed, split_file, stratify=not multi_label)
    for split in SPLITS:
        if not rows.get(split):
            raise ValueError(
                f"--dataset_name {name}: the {split} split holds no song ({ {s: len(r) for s, r in rows.items()} }); "
                "give the split names (--validation_split_name, --test_split_name) or use a dataset with more groups."
            )
    leaking = set.intersection(*({e["album"] for e in rows[s]} for s in SPLITS)) if group_column else set()
    if leaking:
        raise ValueError(f"--dataset_name {name}: groups {sorted(leaking)[:5]} are in more than one split.")
    features = Features(
        {"audio": Value("string"), "label": label_feature, "song_id": Value("string"), "album": Value("string")}
    )
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {key: [e[key if key != "audio" else "path"] for e in _songs_of(rows[split])] for key in features},
                features=features,
            )
            for split in SPLITS
        }
    )


def _songs_of(entries: list) -> list:
    """Rows sorted by song id then row: the order of the song datasets of the dedicated loaders."""
    return sorted(entries, key=lambda e: (e["song_id"], e["index"]))


def read_split_file(split_file: Union[str, os.PathLike]) -> Dict[str, str]:
    """The saved assignment of a split file, `{group: "train" | "validation" | "test"}` (its `"groups"` object).
    A torn or malformed file raises a `ValueError` naming the file, what is wrong, and what to do about it."""
    path = Path(split_file)
    remedy = (
        f"delete {path} to draw a new split (from --split_seed and --split_fractions; the run's earlier split is then "
        "lost) or fix it"
    )
    expected = 'a JSON object {"groups": {"<group>": "train" | "validation" | "test", ...}} (plus "seed", "fractions")'
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"the split file {path} is empty (an interrupted run?); expected {expected}: {remedy}.")
    try:
        saved = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(
            f"the split file {path}: byte {error.start} is not UTF-8 ({error.reason}); expected {expected} in UTF-8: "
            f"{remedy}."
        ) from error
    except json.JSONDecodeError as error:
        raise ValueError(
            f"the split file {path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}; cut "
            f"short by an interrupted run?); expected {expected}: {remedy}."
        ) from error
    if not isinstance(saved, dict):
        raise ValueError(f"the split file {path} holds a JSON {type(saved).__name__}; expected {expected}: {remedy}.")
    if "groups" not in saved:
        raise ValueError(
            f'the split file {path} has no "groups" (keys: {sorted(saved)}); expected {expected}: {remedy}.'
        )
    groups = saved["groups"]
    if not isinstance(groups, dict):
        raise ValueError(
            f'the split file {path}: "groups" is a JSON {type(groups).__name__}; expected {expected}: {remedy}.'
        )
    unknown = [(group, split) for group, split in groups.items() if split not in SPLITS]
    if unknown:
        examples = ", ".join(f"{group!r}: {split!r}" for group, split in unknown[:5])
        raise ValueError(
            f"the split file {path}: {len(unknown)} of its {len(groups)} group(s) have an unknown split, e.g. "
            f"{examples}; expected each split to be one of {', '.join(SPLITS)}: {remedy}."
        )
    return groups


def _split_single(entries: list, fractions, seed: int, split_file, stratify: bool = True) -> Dict[str, list]:
    """Split one train split by group (see `group_split`), reusing `split_file` when it exists (written whole or not
    at all: a temporary file renamed into place)."""
    assignment = None
    if split_file is not None and Path(split_file).is_file():
        assignment = read_split_file(split_file)
    if assignment is None:
        groups = [e["album"] for e in entries]
        splits = group_split([e["label"] if stratify else 0 for e in entries], groups, fractions, seed)
        assignment = dict(zip(groups, splits))
        if split_file is not None:
            target = Path(split_file)
            target.parent.mkdir(parents=True, exist_ok=True)
            payload = {"seed": seed, "fractions": list(fractions), "groups": assignment}
            temporary = target.with_name(f"{target.name}.tmp{os.getpid()}")
            try:
                temporary.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
                os.replace(temporary, target)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
    missing = sorted({entry["album"] for entry in entries if entry["album"] not in assignment})
    if missing:
        raise ValueError(
            f"the split file {split_file} does not name {len(missing)} group(s) of the dataset, e.g. "
            f"{', '.join(repr(group) for group in missing[:5])}: was it written for another dataset (or before rows "
            f"were added)? Delete {split_file} to draw a new split, or give another --output_dir."
        )
    result = {split: [] for split in SPLITS}
    for entry in entries:
        result[assignment[entry["album"]]].append(entry)
    return result
