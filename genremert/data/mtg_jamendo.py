"""MTG-Jamendo (Bogdanov et al. 2019) for multi-label auto-tagging, from its own layout and its official splits.

    <data_dir>/<NN>/<track number>.mp3        the audio, as the dataset's download script unpacks it (00/1234.mp3;
                                              the audio-low download: 00/1234.low.mp3)
    <splits_dir>/split-<K>/<subset file>-{train,validation,test}.tsv
                                              the official split files of github.com/MTG/mtg-jamendo-dataset
                                              (splits_dir: by default <data_dir>/data/splits or <data_dir>/splits; a
                                              clone of that repository works as splits_dir too)

A split file is tab-separated: a header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``, then one line per track,
``track_0001234  artist_000567  album_000890  34/1234.mp3  212.3  genre---rock  instrument---guitar …`` (the tags are
every field after the fifth, each ``<category>---<tag>`` with category genre, instrument or mood/theme).

:func:`load_mtg_jamendo` returns the song DatasetDict every loader returns, one row per track: ``audio`` (path),
``label`` (the track's tag ids, a ``List(ClassLabel)``: multi-label, like MagnaTagATune), ``song_id`` (``TRACK_ID``)
and ``album`` (``ALBUM_ID``). The official splits keep every artist in one split. Subsets: ``top50`` (the 50 most
frequent tags; the names keep their category, ``genre---rock``), ``genre``, ``instrument``, ``moodtheme`` (names
without the category: ``rock``) and ``all``. The tag names are the tags of the subset's three split files, sorted.

A PATH is relative to the audio folder: an absolute one, or one leading out of it with ``..``, is refused naming the
file and line. The file listed (``34/1234.mp3``) is used when it is there; else the same track under the audio-low name
(``34/1234.low.mp3``) or another audio suffix (a converted copy, ``34/1234.flac``). Every file is checked up front as
for GTZAN: unusable ones are reported together and skipped (or raise with ``on_bad_file="raise"``); listed tracks absent
from disk are an error unless ``allow_missing_files``. :func:`mtg_jamendo_rows` yields the rows one by one without
building anything, for streaming.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from datasets import DatasetDict

from .audio_files import AUDIO_SUFFIXES, BadAudioFile, check_on_bad_file
from .songs import SPLITS, Song, build_songs, resolve_data_dir


MTG_JAMENDO_LAYOUT = """\
<data_dir>/<NN>/<track number>.mp3   (or .low.mp3; e.g. 34/1234.mp3)
<splits_dir>/split-<K>/autotagging[_top50tags|_genre|_instrument|_moodtheme]-{train,validation,test}.tsv
    (splits_dir defaults to <data_dir>/data/splits or <data_dir>/splits: the data/splits folder of
     github.com/MTG/mtg-jamendo-dataset)"""
# subset → the prefix of its split files.
MTG_JAMENDO_SUBSETS = {
    "top50": "autotagging_top50tags",
    "genre": "autotagging_genre",
    "instrument": "autotagging_instrument",
    "moodtheme": "autotagging_moodtheme",
    "all": "autotagging",
}
MTG_JAMENDO_CATEGORIES = ("genre", "instrument", "mood/theme")
# The one category of a single-category subset: its tags must be of it, and their names drop the prefix.
_SUBSET_CATEGORY = {"genre": "genre", "instrument": "instrument", "moodtheme": "mood/theme"}
SPLIT_FILE_HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION")
_TRACK_ID = re.compile(r"^track_\d+$")

# (split, audio path, tag names, song_id, album): one track, as `mtg_jamendo_rows` yields it.
TrackRow = Tuple[str, str, Tuple[str, ...], str, str]


def utf8_lines(path: Union[str, os.PathLike], expected: str) -> Iterator[str]:
    """The lines of a text file (ends kept, a leading byte-order mark dropped), read and decoded one at a time, so a
    large file is never held whole. A byte that is not UTF-8 raises a `ValueError` naming the file, the line, the column
    and `expected` (what the file should be)."""
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{path}, line {line_number}, column {error.start + 1}: byte 0x{raw[error.start]:02x} is not "
                    f"UTF-8 ({error.reason}); expected {expected} as UTF-8 text: download it again, or save it as UTF-8."
                ) from error
            yield line.removeprefix("\ufeff") if line_number == 1 else line


def split_index(split: Union[int, str]) -> int:
    """The number K of an official split given as ``K``, ``"K"`` or ``"split-K"``."""
    text = str(split).removeprefix("split-")
    if isinstance(split, bool) or not text.isdigit():
        raise ValueError(f"MTG-Jamendo: split {split!r} is not an official split; expected 0…4, '3' or 'split-3'.")
    return int(text)


def find_splits_dir(data_dir: Union[str, os.PathLike], splits_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """The folder holding the ``split-<K>`` folders: `splits_dir` (or its ``data/splits`` or ``splits``: a clone of the
    dataset's repository), else ``<data_dir>/data/splits`` or ``<data_dir>/splits``."""
    bases = [Path(splits_dir)] if splits_dir is not None else [Path(data_dir)]
    tried = []
    for base in bases:
        for candidate in (base, base / "data" / "splits", base / "splits"):
            tried.append(str(candidate))
            if candidate.is_dir() and any(p.name.startswith("split-") for p in candidate.iterdir() if p.is_dir()):
                return candidate
    flag = "splits_dir" if splits_dir is not None else "data_dir (no splits_dir given)"
    raise FileNotFoundError(
        f"MTG-Jamendo: no split-<K> folders in {', '.join(tried)} (from {flag}); expected the layout\n"
        f"{MTG_JAMENDO_LAYOUT}\nPass splits_dir=<a clone of github.com/MTG/mtg-jamendo-dataset>."
    )


def split_files(splits_root: Path, subset: str, split: Union[int, str]) -> Dict[str, Path]:
    """``{train|validation|test: path}`` of the official split files of `subset` and `split`; all three must exist."""
    if subset not in MTG_JAMENDO_SUBSETS:
        raise ValueError(f"MTG-Jamendo: unknown subset {subset!r}; expected one of {', '.join(MTG_JAMENDO_SUBSETS)}.")
    folder = splits_root / f"split-{split_index(split)}"
    if not folder.is_dir():
        found = sorted(p.name for p in splits_root.iterdir() if p.is_dir() and p.name.startswith("split-"))
        raise FileNotFoundError(f"MTG-Jamendo: no folder {folder} for split={split!r}; found {', '.join(found)}.")
    files = {name: folder / f"{MTG_JAMENDO_SUBSETS[subset]}-{name}.tsv" for name in SPLITS}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"MTG-Jamendo: split file(s) of subset={subset!r} missing: {', '.join(missing)}; expected the layout\n"
            f"{MTG_JAMENDO_LAYOUT}"
        )
    return files


def read_split_file(path: Path, subset: str) -> Iterator[Tuple[int, str, str, str, Tuple[str, ...]]]:
    """The tracks of one split file, one at a time: (line, TRACK_ID, ALBUM_ID, PATH, tag names). A malformed line (too
    few fields, a bad TRACK_ID, DURATION or tag, a tag of another category than the subset's) raises a `ValueError`
    naming the file, the line and what was expected."""
    category = _SUBSET_CATEGORY.get(subset)
    lines = utf8_lines(path, "an MTG-Jamendo split file")
    header = next(lines, "").rstrip("\r\n").split("\t")
    if tuple(header[:5]) != SPLIT_FILE_HEADER:
        raise ValueError(
            f"{path}, line 1: the header is {header[:6]}; expected the tab-separated {', '.join(SPLIT_FILE_HEADER)}, "
            "TAGS of an MTG-Jamendo split file."
        )
    for line_number, line in enumerate(lines, start=2):
        fields = line.rstrip("\r\n").split("\t")
        if fields == [""]:
            continue
        where = f"{path}, line {line_number}"
        if len(fields) < 6:
            raise ValueError(
                f"{where}: {len(fields)} tab-separated field(s) {fields}; expected TRACK_ID, ARTIST_ID, ALBUM_ID, "
                "PATH, DURATION and at least one tag."
            )
        empty = [column for column, value in zip(SPLIT_FILE_HEADER, fields) if not value.strip()]
        if empty:
            raise ValueError(f"{where}: {', '.join(empty)} empty; expected a value in every column.")
        track_id, _, album_id, audio_path, duration = fields[:5]
        if not _TRACK_ID.match(track_id):
            raise ValueError(f"{where}: TRACK_ID {track_id!r}; expected track_<digits> (e.g. track_0001234).")
        try:
            if not float(duration) >= 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"{where}: DURATION {duration!r} of {track_id}; expected seconds (e.g. 212.3).") from None
        tags = []
        for tag in fields[5:]:
            tag_category, separator, name = tag.partition("---")
            if not separator or not name or tag_category not in MTG_JAMENDO_CATEGORIES:
                raise ValueError(
                    f"{where}: tag {tag!r} of {track_id}; expected <category>---<tag> with category one of "
                    f"{', '.join(MTG_JAMENDO_CATEGORIES)} (e.g. genre---rock)."
                )
            if category is not None and tag_category != category:
                raise ValueError(
                    f"{where}: tag {tag!r} of {track_id} in a split file of subset={subset!r}; expected only "
                    f"{category}---<tag> tags: is this the file of another subset?"
                )
            tags.append(name if category is not None else tag)
        yield line_number, track_id, album_id, audio_path, tuple(dict.fromkeys(tags))


class _AudioFinder:
    """The file of a listed path: the path itself; else the same track number under the audio-low name (1234.low.mp3)
    or another audio suffix (a converted copy). Each folder is listed once, and only when a listed file is absent."""

    def __init__(self) -> None:
        self._folders: Dict[str, Dict[str, List[str]]] = {}

    def __call__(self, path: str) -> str:
        if os.path.isfile(path):
            return path
        folder, name = os.path.split(path)
        names = self._index(folder).get(name.split(".")[0], [])
        return os.path.join(folder, names[0]) if names else path

    def _index(self, folder: str) -> Dict[str, List[str]]:
        if folder not in self._folders:
            index = defaultdict(list)
            listing = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
            for name in listing:
                stem, _, rest = name.partition(".")
                suffix = "." + rest.lower().removeprefix("low.")
                if not name.startswith(".") and suffix in AUDIO_SUFFIXES:
                    index[stem].append(name)
            for names in index.values():  # full quality before audio-low, mp3 before a converted copy
                names.sort(key=lambda name: (".low." in name.lower(), not name.lower().endswith(".mp3"), name))
            self._folders[folder] = dict(index)
        return self._folders[folder]


def audio_path_inside(root: Path, listed: str, where: str) -> str:
    """`listed` (a PATH of a split file) under `root`; an absolute path, or one leading out of `root` by its name
    (``..``), is refused (links inside the folder are the user's own and are followed, as for your own data)."""
    if not listed or os.path.isabs(listed) or listed.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", listed):
        raise ValueError(
            f"{where}: PATH {listed!r} is not a relative path; expected a path inside the audio folder {root} "
            "such as 34/1234.mp3."
        )
    normal = os.path.normpath(listed)
    if normal == os.curdir or normal == os.pardir or normal.startswith(os.pardir + os.sep):
        raise ValueError(
            f"{where}: PATH {listed!r} leads out of the audio folder {root} (..) or to the folder itself; expected "
            "a file inside it such as 34/1234.mp3."
        )
    return os.path.join(root, normal)


def mtg_jamendo_rows(
    data_dir: Union[str, os.PathLike],
    subset: str = "top50",
    split: Union[int, str] = 0,
    *,
    splits_dir: Optional[Union[str, os.PathLike]] = None,
    parts: Sequence[str] = SPLITS,
) -> Iterator[TrackRow]:
    """Every track of the official split files of `parts`, one at a time, as ``(split, audio path, tag names, song_id,
    album)``: reads one line at a time and builds nothing, so it suits streaming. `data_dir` is the audio folder
    itself (no archive). A path not on disk is yielded as listed (:func:`load_mtg_jamendo` reports it). Malformed
    lines, paths leading out of the folder and a track listed twice (in one file or two) raise a `ValueError` naming
    the file(s) and line(s)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"MTG-Jamendo: data_dir {root} does not exist or is not a folder; expected the layout\n{MTG_JAMENDO_LAYOUT}"
        )
    unknown = [part for part in parts if part not in SPLITS]
    if unknown:
        raise ValueError(f"MTG-Jamendo: unknown part(s) {unknown}; expected some of {', '.join(SPLITS)}.")
    files = split_files(find_splits_dir(root, splits_dir), subset, split)
    find = _AudioFinder()
    seen: Dict[str, str] = {}  # TRACK_ID → "file, line" of its first listing
    for part in parts:
        for line_number, track_id, album_id, listed, tags in read_split_file(files[part], subset):
            where = f"{files[part]}, line {line_number}"
            if track_id in seen:
                raise ValueError(
                    f"{where}: {track_id} is listed again (first at {seen[track_id]}); expected each track once, "
                    "in one split."
                )
            seen[track_id] = where
            yield part, find(audio_path_inside(root, listed, where)), tags, track_id, album_id


def load_mtg_jamendo(
    data_dir: Union[str, os.PathLike],
    split: Union[int, str] = 0,
    seed: int = 0,
    *,
    subset: str = "top50",
    splits_dir: Optional[Union[str, os.PathLike]] = None,
    stems_dir: Optional[Union[str, os.PathLike]] = None,
    on_bad_file: str = "skip",
    num_workers: Optional[int] = None,
    allow_missing_files: bool = False,
) -> DatasetDict:
    """MTG-Jamendo tracks with the tags of `subset` (``top50``, ``genre``, ``instrument``, ``moodtheme``, ``all``) in
    the official split `split` (0…4, or ``"split-3"``): ``train`` / ``validation`` / ``test`` (see the module docstring
    for the columns and rules). `seed` is unused (the splits are fixed); it is accepted like the other loaders'.
    `data_dir` may also be a .tar/.tar.gz/.zip of the audio folder; `stems_dir` as in :func:`load_gtzan`."""
    check_on_bad_file(on_bad_file)
    if subset not in MTG_JAMENDO_SUBSETS:
        raise ValueError(f"MTG-Jamendo: unknown subset {subset!r}; expected one of {', '.join(MTG_JAMENDO_SUBSETS)}.")
    split_index(split)
    root = resolve_data_dir(data_dir, "mtg_jamendo")
    rows = list(mtg_jamendo_rows(root, subset, split, splits_dir=splits_dir))
    return songs_of_rows("MTG-Jamendo", rows, on_bad_file, num_workers, stems_dir, allow_missing_files)


def songs_of_rows(
    dataset: str,
    rows: Iterable[TrackRow],
    on_bad_file: str,
    num_workers: Optional[int],
    stems_dir: Optional[Union[str, os.PathLike]],
    allow_missing_files: bool,
    multi_label: bool = True,
) -> DatasetDict:
    """The song DatasetDict of tagged rows: tag names sorted into a `ClassLabel`, listed files absent from disk
    reported as missing, every file checked (:func:`build_songs`). Single-label (`multi_label=False`): one tag a row."""
    rows = list(rows)
    names = sorted({tag for _, _, tags, _, _ in rows for tag in tags})
    index = {name: i for i, name in enumerate(names)}
    splits: Dict[str, List[Song]] = {name: [] for name in SPLITS}
    missing: List[BadAudioFile] = []
    for part, path, tags, song_id, album in rows:
        if not os.path.isfile(path):
            missing.append(BadAudioFile(path, f"missing: track {song_id} of the {part} split, not on disk"))
            continue
        label = sorted(index[tag] for tag in tags) if multi_label else index[tags[0]]
        splits[part].append(Song(song_id, label, path, album))
    return build_songs(
        dataset,
        splits,
        names,
        True,
        on_bad_file,
        num_workers,
        stems_dir,
        missing,
        allow_missing_files,
        multi_label=multi_label,
    )


__all__ = [
    "MTG_JAMENDO_SUBSETS",
    "find_splits_dir",
    "load_mtg_jamendo",
    "mtg_jamendo_rows",
    "read_split_file",
    "split_files",
]
