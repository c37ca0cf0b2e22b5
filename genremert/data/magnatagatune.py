"""MagnaTagATune (MTAT, Law et al. 2009) for multi-label tagging, from its original layout.

    <data_dir>/annotations_final.csv      tab-separated: "clip_id", 188 tag columns (0/1), "mp3_path"
    <data_dir>/0/ … <data_dir>/f/          the mp3 clips, e.g. f/american_bach_soloists-…-bwv54__i_aria-30-59.mp3
    (or the mp3 folders under <data_dir>/mp3/)

:func:`load_magnatagatune` returns the song DatasetDict every loader returns — here one row per *clip* (the unit that
carries tags): ``audio`` (path), ``label`` (the clip's tag ids, a ``List(ClassLabel)`` of the top-50 tags), ``song_id``
(the clip, ``<folder>/<file stem>``) and ``album`` (the *song* the clip was cut from: the ``mp3_path`` without its
``-<start>-<end>.mp3`` suffix). Splits follow the common directory split: folders 0–b train, c validation, d–f test;
the clips of one song never sit in two splits (a song whose clips fall in folders of different splits goes whole to
the most held-out of them: test, then validation). Clips without any of the kept tags are dropped (the usual practice;
``keep_untagged=True`` keeps them). Every clip is checked up front as for GTZAN and artist20: unusable or missing files
are reported together and skipped (or raise with ``on_bad_file="raise"``).
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from datasets import DatasetDict

from .audio_files import BadAudioFile, check_on_bad_file
from .songs import SPLITS, Song, build_songs, resolve_data_dir


MTAT_LAYOUT = """\
<data_dir>/annotations_final.csv   (tab-separated: clip_id, the tag columns, mp3_path)
<data_dir>/<0..f>/<clip>.mp3       (or <data_dir>/mp3/<0..f>/<clip>.mp3)"""
# The commonly used directory split (e.g. Won et al. 2019/2020, Pons et al. 2018): by the first folder of mp3_path.
MTAT_SPLIT_FOLDERS = {"train": "0123456789ab", "validation": "c", "test": "def"}
MTAT_SPLITS = ("directory",)
_CLIP_SUFFIX = re.compile(r"-\d+-\d+\.mp3$")
_HELD_OUT_ORDER = {"test": 2, "validation": 1, "train": 0}


def song_of_clip(mp3_path: str) -> str:
    """The song a clip was cut from: `f/artist-album-01-track-30-59.mp3` → `artist-album-01-track` (folder dropped)."""
    name = Path(mp3_path).name
    return _CLIP_SUFFIX.sub("", name) if _CLIP_SUFFIX.search(name) else Path(name).stem


def read_annotations(path: Union[str, os.PathLike]) -> Tuple[List[str], List[Tuple[str, List[int], str]]]:
    """`annotations_final.csv` → (the tag names in column order, rows of (clip_id, 0/1 per tag, mp3_path)).

    Malformed files (not UTF-8, a wrong header, a bad tag value, two conflicting rows of one clip) raise a `ValueError`
    naming the file, the line and what was expected. A row repeating an earlier one exactly (the same clip_id, tags
    and mp3_path) is dropped with a warning naming the clip and both lines, so that no clip counts twice."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ValueError(
            f"{path}, line {line}, column {column}: byte 0x{data[error.start]:02x} is not UTF-8 ({error.reason}); "
            "expected annotations_final.csv as UTF-8 text (MagnaTagATune's own file is plain ASCII): download it "
            "again, or save it as UTF-8."
        ) from error
    with io.StringIO(text.removeprefix("\ufeff"), newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path} is empty: expected a tab-separated header clip_id, <tags>, mp3_path.") from None
        if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
            raise ValueError(
                f"{path}: the header must be tab-separated clip_id, <tag columns>, mp3_path (MagnaTagATune's "
                f"annotations_final.csv), got {header[:3]} … {header[-1:]}."
            )
        tags = header[1:-1]
        rows = []
        seen: Dict[str, Tuple[int, Tuple[str, List[int], str]]] = {}  # clip_id and mp3_path → (line, row)
        repeated = []
        for line_number, row in enumerate(reader, start=2):
            if not row or row == [""]:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}, line {line_number}: {len(row)} fields, the header has {len(header)}.")
            values = row[1:-1]
            bad = [(tags[i], v) for i, v in enumerate(values) if v not in ("0", "1")]
            if bad:
                raise ValueError(f"{path}, line {line_number}: tag {bad[0][0]!r} is {bad[0][1]!r}; expected 0 or 1.")
            if not row[-1]:
                raise ValueError(f"{path}, line {line_number}: clip {row[0]!r} has an empty mp3_path.")
            entry = (row[0], [int(v) for v in values], row[-1])
            earlier = seen.get(f"clip_id {entry[0]}") or seen.get(f"mp3_path {entry[2]}")
            if earlier is not None:
                if earlier[1] == entry:
                    repeated.append(f"clip {entry[0]} ({entry[2]}) on line {line_number}, a copy of line {earlier[0]}")
                    continue
                raise ValueError(
                    f"{path}: lines {earlier[0]} and {line_number} describe the same clip differently: "
                    f"{_difference(tags, earlier[1], entry)}; expected one row per clip_id and mp3_path: keep the "
                    "right one."
                )
            seen[f"clip_id {entry[0]}"] = seen[f"mp3_path {entry[2]}"] = (line_number, entry)
            rows.append(entry)
    if repeated:
        warnings.warn(
            f"{path}: {len(repeated)} row(s) repeat an earlier row exactly and are dropped (each clip counts once): "
            + "; ".join(repeated[:10])
            + (f"; and {len(repeated) - 10} more." if len(repeated) > 10 else "."),
            stacklevel=2,
        )
    return tags, rows


def _difference(tags: List[str], first: Tuple[str, List[int], str], second: Tuple[str, List[int], str]) -> str:
    """How two rows of one clip differ, in words: clip ids, mp3 paths, the tags only one of them sets."""
    parts = []
    if first[0] != second[0]:
        parts.append(f"clip_id {first[0]!r} and {second[0]!r} (mp3_path {first[2]!r})")
    if first[2] != second[2]:
        parts.append(f"mp3_path {first[2]!r} and {second[2]!r} (clip_id {first[0]!r})")
    if first[1] != second[1]:
        only_first = [tag for tag, a, b in zip(tags, first[1], second[1]) if a and not b]
        only_second = [tag for tag, a, b in zip(tags, first[1], second[1]) if b and not a]
        parts.append(
            f"clip {first[0]!r} ({first[2]}) has the tags {only_first} only on the first and {only_second} only on "
            "the second"
        )
    return "; ".join(parts)


def top_tags(tags: List[str], rows: List[Tuple[str, List[int], str]], num_tags: int = 50) -> List[str]:
    """The `num_tags` most frequent tags over every clip of the CSV (ties by name), most frequent first."""
    counts = Counter()
    for _, values, _ in rows:
        counts.update(tag for tag, value in zip(tags, values) if value)
    ranked = sorted(tags, key=lambda tag: (-counts[tag], tag))
    return ranked[: min(num_tags, len(tags))]


def _mp3_root(data_dir: Path) -> Path:
    if (data_dir / "mp3").is_dir() and not any((data_dir / folder).is_dir() for folder in "0123456789abcdef"):
        return data_dir / "mp3"
    return data_dir


def directory_split(rows: List[Tuple[str, List[int], str]]) -> Tuple[Dict[str, str], List[str]]:
    """The split of every clip (by mp3_path) under the directory split, songs kept whole; and the songs that had to be
    moved because their clips sat in folders of different splits (each goes to its most held-out split)."""
    split_of_folder = {folder: split for split, folders in MTAT_SPLIT_FOLDERS.items() for folder in folders}
    song_splits = defaultdict(set)
    for clip_id, _, mp3_path in rows:
        folder = mp3_path.split("/")[0].lower()
        if folder not in split_of_folder:
            raise ValueError(
                f"clip {clip_id}: mp3_path {mp3_path!r} is not in a folder 0…f; expected the layout\n{MTAT_LAYOUT}"
            )
        song_splits[song_of_clip(mp3_path)].add(split_of_folder[folder])
    moved = sorted(song for song, splits in song_splits.items() if len(splits) > 1)
    song_split = {song: max(splits, key=_HELD_OUT_ORDER.get) for song, splits in song_splits.items()}
    return {mp3_path: song_split[song_of_clip(mp3_path)] for _, _, mp3_path in rows}, moved


def load_magnatagatune(
    data_dir: Union[str, os.PathLike],
    split: str = "directory",
    seed: int = 0,
    *,
    num_tags: int = 50,
    keep_untagged: bool = False,
    stems_dir: Optional[Union[str, os.PathLike]] = None,
    on_bad_file: str = "skip",
    num_workers: Optional[int] = None,
    allow_missing_files: bool = False,
) -> DatasetDict:
    """MagnaTagATune clips with their top-`num_tags` tags: ``train`` / ``validation`` / ``test`` (see the module
    docstring for the columns, the split and the rules). `seed` is unused (the directory split is fixed); it is
    accepted like the other loaders'. `data_dir` may also be a .tar.gz/.zip of the layout."""
    check_on_bad_file(on_bad_file)
    if split not in MTAT_SPLITS:
        raise ValueError(f"MagnaTagATune: unknown split {split!r}; expected one of {', '.join(MTAT_SPLITS)}.")
    if num_tags < 1:
        raise ValueError(f"num_tags must be >= 1, got {num_tags}.")
    data_dir = resolve_data_dir(data_dir, "magnatagatune")
    annotations = data_dir / "annotations_final.csv"
    if not annotations.is_file():
        raise FileNotFoundError(
            f"MagnaTagATune: no annotations_final.csv in {data_dir}; expected the layout\n{MTAT_LAYOUT}"
        )
    tags, rows = read_annotations(annotations)
    kept = top_tags(tags, rows, num_tags)
    column_of = {tag: tags.index(tag) for tag in kept}
    split_of, moved = directory_split(rows)
    if moved:
        warnings.warn(
            f"MagnaTagATune: {len(moved)} song(s) have clips in folders of different splits; each was put whole in "
            f"its most held-out split, e.g. {', '.join(moved[:3])}.",
            stacklevel=2,
        )
    root = _mp3_root(data_dir)
    splits: Dict[str, List[Song]] = {name: [] for name in SPLITS}
    missing: List[BadAudioFile] = []
    untagged = 0
    for clip_id, values, mp3_path in rows:
        clip_tags = [i for i, tag in enumerate(kept) if values[column_of[tag]]]
        if not clip_tags and not keep_untagged:
            untagged += 1
            continue
        path = root / mp3_path
        name = split_of[mp3_path]
        if not path.is_file():
            missing.append(BadAudioFile(str(path), f"missing: clip {clip_id} of the {name} split, not on disk"))
            continue
        song_id = mp3_path[: -len(".mp3")] if mp3_path.endswith(".mp3") else mp3_path
        splits[name].append(Song(song_id, clip_tags, str(path), song_of_clip(mp3_path)))
    if untagged:
        warnings.warn(
            f"MagnaTagATune: {untagged} clip(s) carry none of the top-{len(kept)} tags and are left out "
            "(keep_untagged=True keeps them).",
            stacklevel=2,
        )
    return build_songs(
        "MagnaTagATune",
        splits,
        kept,
        True,
        on_bad_file,
        num_workers,
        stems_dir,
        missing,
        allow_missing_files,
        multi_label=True,
    )


__all__ = ["MTAT_SPLIT_FOLDERS", "load_magnatagatune", "read_annotations", "song_of_clip", "top_tags"]
