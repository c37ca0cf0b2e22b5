"""FMA, the Free Music Archive dataset (Defferrard et al. 2017), from its own layout and its official split.

    <data_dir>/fma_metadata/tracks.csv          track metadata, a two-row header (a column multi-index)
    <data_dir>/fma_metadata/genres.csv          genre_id → title (needed for labels="genres" / "genres_all")
    <data_dir>/fma_<size>/<NNN>/<NNNNNN>.mp3    the audio: the track id zero-padded to 6 digits, its first 3 the folder
                                                (e.g. fma_small/000/000002.mp3)

Sizes are nested: ``small`` (8,000 tracks, 8 balanced genres) ⊂ ``medium`` (25,000) ⊂ ``large`` (106,574 clips of 30 s);
``full`` is ``large`` untrimmed. A track's smallest size is its ``('set', 'subset')`` (small, medium or large), so a size
holds every track whose subset is that size or a smaller one. The official split is ``('set', 'split')``: training,
validation, test (artist-filtered: an artist never sits in two splits).

:func:`load_fma` returns the song DatasetDict every loader returns, one row per track: ``audio`` (path), ``label``,
``song_id`` (the 6-digit track id) and ``album`` (``album_<('album', 'id')>``). Labels:

- ``"genre_top"`` (default): single-label, a ``ClassLabel`` of the track's top-level genre (the names present in the
  size, sorted). Tracks without one (none in small and medium; about half of large) are left out with a count.
- ``"genres"`` / ``"genres_all"``: multi-label, a ``List(ClassLabel)`` of the track's genres (``genres_all`` adds every
  ancestor of each genre), named by ``genres.csv``; tracks without any genre are left out with a count.

Files are checked up front as for GTZAN (unusable ones reported together and skipped, or raised with
``on_bad_file="raise"``; tracks absent from disk are an error unless ``allow_missing_files``). A malformed tracks.csv or
genres.csv is a `ValueError` naming the file, the line and what was expected. :func:`fma_rows` yields the tracks one by
one, reading the CSV a line at a time, for streaming.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

from datasets import DatasetDict

from .audio_files import check_on_bad_file
from .mtg_jamendo import TrackRow, songs_of_rows, utf8_lines
from .songs import SPLITS, resolve_data_dir


FMA_LAYOUT = """\
<data_dir>/fma_metadata/tracks.csv         (and genres.csv, for labels="genres" / "genres_all")
<data_dir>/fma_<size>/<NNN>/<NNNNNN>.mp3   (e.g. fma_small/000/000002.mp3; or <data_dir> = the fma_<size>
                                            folder with fma_metadata beside it, or metadata_dir=)"""
FMA_SIZES = ("small", "medium", "large", "full")
FMA_LABELS = ("genre_top", "genres", "genres_all")
FMA_SPLITS = ("official",)
FMA_SUBSETS = ("small", "medium", "large")  # nested, smallest first: a track of subset s is in every size from s on
_SUBSETS_OF_SIZE = {
    "small": {"small"},
    "medium": {"small", "medium"},
    "large": set(FMA_SUBSETS),
    "full": set(FMA_SUBSETS),
}
_SPLIT_OF = {"training": "train", "validation": "validation", "test": "test"}
_COLUMNS = {
    "split": ("set", "split"),
    "subset": ("set", "subset"),
    "genre_top": ("track", "genre_top"),
    "genres": ("track", "genres"),
    "genres_all": ("track", "genres_all"),
    "album": ("album", "id"),
}
_GENRE_LIST = re.compile(r"^\[\s*(?:\d+\s*(?:,\s*\d+\s*)*)?\]$")  # "[]", "[21]", "[1, 21, 38]"

# (line, track id, split, subset, label: a genre_top name or genre ids, album): one track as `read_tracks` yields it.
TrackRecord = Tuple[int, int, str, str, Union[str, Tuple[int, ...]], str]


def fma_folders(
    data_dir: Union[str, os.PathLike], size: str, metadata_dir: Optional[Union[str, os.PathLike]] = None
) -> Tuple[Path, Path]:
    """(the audio folder ``fma_<size>``, the metadata folder holding tracks.csv), each checked."""
    if size not in FMA_SIZES:
        raise ValueError(f"FMA: unknown size {size!r}; expected one of {', '.join(FMA_SIZES)}.")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"FMA: data_dir {data_dir} does not exist or is not a folder.\n{FMA_LAYOUT}")
    name = f"fma_{size}"
    if data_dir.name == name:
        audio, base = data_dir, data_dir.parent
    elif (data_dir / name).is_dir():
        audio, base = data_dir / name, data_dir
    else:
        found = sorted(p.name for p in data_dir.iterdir())[:20]
        raise FileNotFoundError(
            f"FMA: no folder {name} for size={size!r} in {data_dir} (it holds: {found or 'nothing'}); expected the "
            f"layout\n{FMA_LAYOUT}"
        )
    metadata = Path(metadata_dir) if metadata_dir is not None else base / "fma_metadata"
    if not (metadata / "tracks.csv").is_file():
        raise FileNotFoundError(
            f"FMA: no tracks.csv in {metadata} (from fma_metadata.zip); expected the layout\n{FMA_LAYOUT}"
        )
    return audio, metadata


def read_genres(path: Union[str, os.PathLike]) -> Dict[int, str]:
    """``{genre_id: title}`` of FMA's genres.csv (header genre_id, #tracks, parent, title, top_level)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"FMA: no genres.csv at {path}; labels 'genres' and 'genres_all' name the genre ids by it (from "
            "fma_metadata.zip)."
        )
    reader = csv.reader(utf8_lines(path, "FMA's genres.csv"))
    header = next(reader, [])
    if "genre_id" not in header or "title" not in header:
        raise ValueError(
            f"{path}, line 1: the header is {header}; expected genre_id, #tracks, parent, title, top_level."
        )
    id_column, title_column = header.index("genre_id"), header.index("title")
    titles: Dict[int, str] = {}
    start = 2
    for row in reader:
        line, start = start, reader.line_num + 1
        if not row:
            continue
        if len(row) != len(header) or not row[id_column].isdigit() or not row[title_column]:
            raise ValueError(
                f"{path}, line {line}: {row}; expected {len(header)} fields, an integer genre_id and a title."
            )
        if int(row[id_column]) in titles:
            raise ValueError(f"{path}, line {line}: genre_id {row[id_column]} is listed twice; expected it once.")
        titles[int(row[id_column])] = row[title_column]
    repeated = [title for title, count in Counter(titles.values()).items() if count > 1]
    if repeated:
        raise ValueError(f"{path}: the title(s) {repeated} name more than one genre_id; expected one title per genre.")
    return titles


def read_tracks(path: Union[str, os.PathLike], label_column: str = "genre_top") -> Iterator[TrackRecord]:
    """The tracks of FMA's tracks.csv, one at a time, reading the file a line at a time. The two-row header must hold
    ('set', 'split'), ('set', 'subset') and ('track', `label_column`); ('album', 'id') is used when present. A
    malformed file (a wrong header, a row with a wrong number of fields, a track id that is not an integer or appears
    twice, an unknown split or subset, a genre list that is not ``[id, …]``) raises a `ValueError` naming the file,
    the line (where a row starts) and what was expected."""
    path = Path(path)
    reader = csv.reader(utf8_lines(path, "FMA's tracks.csv"))
    top, second = next(reader, None), next(reader, None)
    if top is None or second is None:
        raise ValueError(f"{path}: fewer than two lines; expected FMA's tracks.csv with its two-row header.")
    columns = list(zip(top, second))
    wanted = ["split", "subset", label_column]
    absent = [_COLUMNS[key] for key in wanted if _COLUMNS[key] not in columns]
    if absent:
        raise ValueError(
            f"{path}, lines 1-2: no column {', '.join(map(str, absent))} in the two-row header; expected FMA's "
            f"tracks.csv (fma_metadata.zip), whose header holds {', '.join(str(_COLUMNS[key]) for key in wanted)}."
        )
    where = {key: columns.index(_COLUMNS[key]) for key in wanted}
    album_column = columns.index(_COLUMNS["album"]) if _COLUMNS["album"] in columns else None
    first_line: Dict[int, int] = {}
    start = reader.line_num + 1
    for row in reader:
        line, start = start, reader.line_num + 1
        if not row or (line == 3 and row[0] == "track_id" and not any(row[1:])):  # pandas' index-name row
            continue
        if len(row) != len(top):
            raise ValueError(f"{path}, line {line}: {len(row)} fields; the header has {len(top)}.")
        if not row[0].isdigit():
            raise ValueError(f"{path}, line {line}: track_id {row[0]!r}; expected a non-negative integer.")
        track_id = int(row[0])
        if track_id in first_line:
            raise ValueError(
                f"{path}, line {line}: track {track_id} again (first on line {first_line[track_id]}); expected each "
                "track once."
            )
        first_line[track_id] = line
        split, subset = row[where["split"]], row[where["subset"]]
        if split not in _SPLIT_OF:
            raise ValueError(
                f"{path}, line {line}: ('set', 'split') of track {track_id} is {split!r}; expected one of "
                f"{', '.join(_SPLIT_OF)}."
            )
        if subset not in FMA_SUBSETS:
            raise ValueError(
                f"{path}, line {line}: ('set', 'subset') of track {track_id} is {subset!r}; expected one of "
                f"{', '.join(FMA_SUBSETS)}."
            )
        value = row[where[label_column]]
        if label_column != "genre_top":
            if not _GENRE_LIST.match(value.strip()):
                raise ValueError(
                    f"{path}, line {line}: ('track', {label_column!r}) of track {track_id} is {value!r}; expected a "
                    "list of genre ids such as [21] or [1, 21, 38]."
                )
            value = tuple(dict.fromkeys(int(g) for g in re.findall(r"\d+", value)))
        album = row[album_column] if album_column is not None else ""
        yield line, track_id, _SPLIT_OF[split], subset, value, f"album_{album}" if album else f"{track_id:06d}"


def fma_rows(
    data_dir: Union[str, os.PathLike],
    size: str = "small",
    labels: str = "genre_top",
    *,
    metadata_dir: Optional[Union[str, os.PathLike]] = None,
    parts: Sequence[str] = SPLITS,
) -> Iterator[TrackRow]:
    """Every track of FMA `size` in the official `parts`, one at a time, as ``(split, audio path, label names,
    song_id, album)``, reading tracks.csv a line at a time and building nothing, so it suits streaming. `data_dir` is a
    folder (no archive). A track without a label yields an empty tuple of names (:func:`load_fma` counts and skips
    those); a path not on disk is yielded as it would be (:func:`load_fma` reports it)."""
    if labels not in FMA_LABELS:
        raise ValueError(f"FMA: unknown labels {labels!r}; expected one of {', '.join(FMA_LABELS)}.")
    unknown = [part for part in parts if part not in SPLITS]
    if unknown:
        raise ValueError(f"FMA: unknown part(s) {unknown}; expected some of {', '.join(SPLITS)}.")
    audio, metadata = fma_folders(data_dir, size, metadata_dir)
    titles = read_genres(metadata / "genres.csv") if labels != "genre_top" else {}
    for line, track_id, split, subset, value, album in read_tracks(metadata / "tracks.csv", labels):
        if subset not in _SUBSETS_OF_SIZE[size] or split not in parts:
            continue
        if labels == "genre_top":
            names = (value,) if value else ()
        else:
            unnamed = [genre for genre in value if genre not in titles]
            if unnamed:
                raise ValueError(
                    f"{metadata / 'tracks.csv'}, line {line}: genre id(s) {unnamed} of track {track_id} are not in "
                    f"{metadata / 'genres.csv'}; expected every genre id of ('track', {labels!r}) there."
                )
            names = tuple(titles[genre] for genre in value)
        song_id = f"{track_id:06d}"
        yield split, os.path.join(audio, song_id[:3], f"{song_id}.mp3"), names, song_id, album


def load_fma(
    data_dir: Union[str, os.PathLike],
    split: str = "official",
    seed: int = 0,
    *,
    size: str = "small",
    labels: str = "genre_top",
    metadata_dir: Optional[Union[str, os.PathLike]] = None,
    stems_dir: Optional[Union[str, os.PathLike]] = None,
    on_bad_file: str = "skip",
    num_workers: Optional[int] = None,
    allow_missing_files: bool = False,
) -> DatasetDict:
    """FMA tracks of `size` (``small``, ``medium``, ``large``, ``full``) with `labels` (``genre_top``: single-label;
    ``genres`` / ``genres_all``: multi-label) in the official split: ``train`` / ``validation`` / ``test`` (see the
    module docstring for the columns and rules). `seed` is unused (the split is fixed); it is accepted like the other
    loaders'. `data_dir` may also be a .zip/.tar.gz of the layout; `stems_dir` as in :func:`load_gtzan`."""
    check_on_bad_file(on_bad_file)
    if split not in FMA_SPLITS:
        raise ValueError(f"FMA: unknown split {split!r}; expected one of {', '.join(FMA_SPLITS)}.")
    if size not in FMA_SIZES:
        raise ValueError(f"FMA: unknown size {size!r}; expected one of {', '.join(FMA_SIZES)}.")
    if labels not in FMA_LABELS:
        raise ValueError(f"FMA: unknown labels {labels!r}; expected one of {', '.join(FMA_LABELS)}.")
    root = resolve_data_dir(data_dir, "fma")
    rows, unlabelled = [], Counter()
    for row in fma_rows(root, size, labels, metadata_dir=metadata_dir):
        if row[2]:
            rows.append(row)
        else:
            unlabelled[row[0]] += 1
    if unlabelled:
        counts = ", ".join(f"{name} {unlabelled[name]}" for name in SPLITS)
        advice = " (labels='genres_all' tags them by every genre they carry)" if labels == "genre_top" else ""
        warnings.warn(
            f"FMA: {sum(unlabelled.values())} track(s) of fma_{size} have no {labels} and are left out ({counts})"
            f"{advice}.",
            stacklevel=2,
        )
    return songs_of_rows(
        "FMA", rows, on_bad_file, num_workers, stems_dir, allow_missing_files, multi_label=labels != "genre_top"
    )


__all__ = ["FMA_LABELS", "FMA_SIZES", "fma_folders", "fma_rows", "load_fma", "read_genres", "read_tracks"]
