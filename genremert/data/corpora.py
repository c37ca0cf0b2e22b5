"""The corpora with published splits: GTZAN and artist20 (MagnaTagATune: `magnatagatune`).

Every loader returns a ``datasets.DatasetDict`` of **songs** (``train``, ``validation``, ``test``;
the synthetic set adds ``test_noisy``) whose ``audio`` column is a file path (a string: nothing is
decoded when a loader runs), ``label`` a ``ClassLabel`` and ``song_id`` a string that is also a
relative path (``blues.00012``, ``<artist>/<album>/<track>``). :func:`slice_songs` turns songs
into fixed-length slices that are decoded lazily, when a row is read:

    >>> songs = load_gtzan("/data/gtzan", split="fault_filtered")
    >>> slices = slice_songs(songs["train"], sampling_rate=24000, slice_seconds=10, overlap_seconds=1,
    ...                      cache_dir="/tmp/decoded")
    >>> slices[0]["input_values"].shape
    (240000,)

Decoding is soundfile (libsndfile, MP3 included) → mono mean of the channels → soxr ("HQ") to the
requested rate; it never goes through ``datasets.Audio`` (torchcodec) on purpose. Every file a
loader lists is checked up front (see :func:`check_audio_file`), so an unusable file is reported
before training starts, not an hour into it. See ``docs/data.md`` for the user documentation.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from datasets import DatasetDict

from .audio_files import AUDIO_SUFFIXES, BadAudioFile, check_on_bad_file
from .songs import SPLIT_LISTS_DIR, SPLITS, Song, build_songs, resolve_data_dir


GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
ARTIST20_ARTISTS = (
    "aerosmith",
    "beatles",
    "creedence_clearwater_revival",
    "cure",
    "dave_matthews_band",
    "depeche_mode",
    "fleetwood_mac",
    "garth_brooks",
    "green_day",
    "led_zeppelin",
    "madonna",
    "metallica",
    "prince",
    "queen",
    "radiohead",
    "roxette",
    "steely_dan",
    "suzanne_vega",
    "tori_amos",
    "u2",
)

GTZAN_LAYOUT = """\
<data_dir>/genres/<genre>/<genre>.000NN.wav   (also genres_original/, Data/genres_original/,
                                               .au files, or <data_dir> = the genres folder itself)
  with <genre> in: """ + ", ".join(GTZAN_GENRES)
ARTIST20_LAYOUT = """\
<data_dir>/mp3s-32k/<artist>/<album>/<track>.mp3   (or <data_dir> = mp3s-32k, or the folder
                                                   holding the artist folders directly)"""


# ============================================================================================= #

# ============================================================================================= #
# GTZAN
# ============================================================================================= #


GTZAN_SPLITS = ("fault_filtered", "lca_songs", "random")
_GTZAN_FILE = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})\.(?P<ext>wav|au)$")
_GTZAN_LIST_FILES = {
    "fault_filtered": {"train": "train_filtered.txt", "validation": "valid_filtered.txt", "test": "test_filtered.txt"},
    "lca_songs": {"train": "lca_train_songs.txt", "validation": "lca_valid_songs.txt", "test": "lca_test_songs.txt"},
}


def _is_hidden(name: str) -> bool:
    """AppleDouble (``._x.wav``) and other dot files: never audio."""
    return name.startswith(".")


def _gtzan_genre_root(data_dir: Path) -> Path:
    for candidate in (
        data_dir / "genres",
        data_dir / "genres_original",
        data_dir / "Data" / "genres_original",
        data_dir,
    ):
        if candidate.is_dir() and any((candidate / g).is_dir() for g in GTZAN_GENRES):
            return candidate
    found = sorted(p.name for p in data_dir.iterdir())[:20]
    raise FileNotFoundError(
        f"GTZAN: no genre folders found under {data_dir} (it contains: {found or 'nothing'}).\n"
        f"Expected layout:\n{GTZAN_LAYOUT}"
    )


def find_gtzan_files(data_dir: Union[str, os.PathLike]) -> Dict[str, str]:
    """``{song_id: path}`` of every GTZAN clip on disk (``blues.00012`` → ``.../blues/blues.00012.wav``).

    A ``.wav`` wins over an ``.au`` copy of the same clip; AppleDouble ``._*`` files and files not
    named ``<genre>.<5 digits>.wav|au`` are ignored. A missing genre folder, or one without a single
    clip, is an error that shows the expected layout.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"GTZAN: data_dir {data_dir} does not exist or is not a folder.\nExpected layout:\n{GTZAN_LAYOUT}"
        )
    root = _gtzan_genre_root(data_dir)
    missing = [g for g in GTZAN_GENRES if not (root / g).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"GTZAN: genre folder(s) missing under {root}: {', '.join(missing)}.\nExpected layout:\n{GTZAN_LAYOUT}"
        )
    files: Dict[str, str] = {}
    for genre in GTZAN_GENRES:
        for name in sorted(os.listdir(root / genre)):
            match = _GTZAN_FILE.match(name)
            if _is_hidden(name) or not match or match.group("genre") != genre:
                continue
            song_id = f"{genre}.{match.group('number')}"
            if song_id not in files or match.group("ext") == "wav":
                files[song_id] = str(root / genre / name)
        if not any(k.startswith(genre + ".") for k in files):
            raise FileNotFoundError(
                f"GTZAN: genre folder {root / genre} holds no clip named "
                f"{genre}.000NN.wav or .au.\nExpected layout:\n{GTZAN_LAYOUT}"
            )
    return dict(sorted(files.items()))


def _read_list(path: Path) -> List[str]:
    """Song ids of a split list file (``genre/genre.000NN.wav`` or ``genre.000NN.wav`` lines)."""
    ids = []
    for line_number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = line.rsplit("/", 1)[-1]
        match = _GTZAN_FILE.match(name)
        if not match:
            raise ValueError(f"{path}:{line_number}: {line!r} is not a GTZAN file name (genre.000NN.wav)")
        ids.append(f"{match.group('genre')}.{match.group('number')}")
    return ids


def gtzan_split_ids(
    split: str,
    song_ids: Sequence[str] = (),
    seed: int = 0,
    random_fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1),
    lists_dir: Optional[Union[str, os.PathLike]] = None,
) -> Dict[str, List[str]]:
    """Song ids of train / validation / test for a GTZAN split name.

    ``fault_filtered`` and ``lca_songs`` read the list files (``data/gtzan/`` by default; `seed`
    unused); ``random`` splits `song_ids` per genre (sorted, then permuted with `seed`) by
    `random_fractions`.
    """
    if split in _GTZAN_LIST_FILES:
        lists_dir = Path(lists_dir) if lists_dir is not None else SPLIT_LISTS_DIR / "gtzan"
        result = {}
        for name, file_name in _GTZAN_LIST_FILES[split].items():
            list_path = lists_dir / file_name
            if not list_path.is_file():
                raise FileNotFoundError(f"GTZAN: split list {list_path} for split={split!r} is missing")
            result[name] = _read_list(list_path)
        return result
    if split == "random":
        if len(random_fractions) != 3 or min(random_fractions) < 0 or not math.isclose(sum(random_fractions), 1.0):
            raise ValueError(f"random_fractions must be 3 non-negative numbers summing to 1, got {random_fractions}")
        result = {name: [] for name in SPLITS}
        for genre_index, genre in enumerate(GTZAN_GENRES):
            ids = sorted(i for i in song_ids if i.split(".")[0] == genre)
            order = np.random.default_rng([seed, genre_index]).permutation(len(ids))
            n_test = int(round(len(ids) * random_fractions[2]))
            n_val = int(round(len(ids) * random_fractions[1]))
            for rank, i in enumerate(order):
                name = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
                result[name].append(ids[i])
        return {name: sorted(ids) for name, ids in result.items()}
    raise ValueError(f"GTZAN: unknown split {split!r}; expected one of {', '.join(GTZAN_SPLITS)}")


def load_gtzan(
    data_dir: Optional[Union[str, os.PathLike]] = None,
    split: str = "fault_filtered",
    seed: int = 0,
    *,
    stems_dir: Optional[Union[str, os.PathLike]] = None,
    on_bad_file: str = "skip",
    random_fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1),
    lists_dir: Optional[Union[str, os.PathLike]] = None,
    num_workers: Optional[int] = None,
    allow_missing_files: bool = False,
    gtzan_revision: Optional[str] = None,
) -> DatasetDict:
    """GTZAN songs from a local folder, its `genres.tar.gz`, or (`data_dir=None`) the Hub: ``train`` / ``validation`` / ``test`` with ``audio`` (path),
    ``label`` (``ClassLabel`` of the ten genres) and ``song_id`` (``blues.00012``).

    split: ``"fault_filtered"`` (Kereliuk & Sturm, 443 / 197 / 290), ``"lca_songs"`` (the LCA
    reference's 250 test songs; 500 / 250 train / validation from the rest, fixed lists) or
    ``"random"`` (stratified per genre, `seed`, `random_fractions`). Every listed file is checked
    before this returns (:func:`check_audio_file`); unusable or missing ones are listed in one
    warning and dropped (``on_bad_file="skip"``) or raise :class:`BadAudioFilesError` (``"raise"``).
    `stems_dir`: use ``<stems_dir>/<song_id>/vocals.wav`` instead of the mix. `lists_dir`: the
    folder of the split list files (default: ``split_lists/gtzan/`` in this package). A listed song
    missing from disk is an error (:class:`BadAudioFilesError` naming the counts per split) unless
    `allow_missing_files`; a split left empty is always an error.
    """
    check_on_bad_file(on_bad_file)
    if split not in GTZAN_SPLITS:
        raise ValueError(f"GTZAN: unknown split {split!r}; expected one of {', '.join(GTZAN_SPLITS)}")
    data_dir = resolve_data_dir(data_dir, "gtzan", gtzan_revision)
    files = find_gtzan_files(data_dir)
    genre_root = _gtzan_genre_root(Path(data_dir))
    ids = gtzan_split_ids(split, list(files), seed=seed, random_fractions=random_fractions, lists_dir=lists_dir)
    label_of = {g: i for i, g in enumerate(GTZAN_GENRES)}
    missing: List[BadAudioFile] = []
    splits: Dict[str, List[Song]] = {}
    for name, song_ids in ids.items():
        splits[name] = []
        for song_id in song_ids:
            genre = song_id.split(".")[0]
            if song_id not in files:
                missing.append(
                    BadAudioFile(
                        str(genre_root / genre / f"{song_id}.wav"),
                        f"missing: listed in the {split!r} {name} split, not on disk",
                    )
                )
                continue
            splits[name].append(Song(song_id, label_of[genre], files[song_id]))
    return build_songs(
        "GTZAN", splits, GTZAN_GENRES, False, on_bad_file, num_workers, stems_dir, missing, allow_missing_files
    )


# ============================================================================================= #
# artist20
# ============================================================================================= #


ARTIST20_SPLITS = ("album", "ellis") + tuple(f"fold{k}" for k in range(6))


def _artist20_root(data_dir: Path) -> Path:
    for candidate in (data_dir / "mp3s-32k", data_dir / "artist20" / "mp3s-32k"):
        if candidate.is_dir():
            return candidate
    return data_dir


def find_artist20_files(data_dir: Union[str, os.PathLike]) -> Dict[str, Dict[str, Dict[str, str]]]:
    """``{artist: {album: {track_stem: path}}}`` of every track on disk, all levels sorted.

    Accepts the ``artist20`` folder, ``mp3s-32k`` itself, or a folder holding the artist folders.
    Errors (showing the expected layout): no artist folder, tracks directly in an artist folder
    (the album level is missing), an artist without albums, an album without tracks.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"artist20: data_dir {data_dir} does not exist or is not a folder.\nExpected layout:\n{ARTIST20_LAYOUT}"
        )
    root = _artist20_root(data_dir)
    artists = sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name) and p.name != "lists")
    if not artists:
        raise FileNotFoundError(f"artist20: no artist folders under {root}.\nExpected layout:\n{ARTIST20_LAYOUT}")
    tree: Dict[str, Dict[str, Dict[str, str]]] = {}
    for artist in artists:
        artist_dir = root / artist
        loose = sorted(
            p.name
            for p in artist_dir.iterdir()
            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not _is_hidden(p.name)
        )
        if loose:
            raise FileNotFoundError(
                f"artist20: audio files directly in {artist_dir} (e.g. {loose[0]}): the album "
                f"folder level is missing.\nExpected layout:\n{ARTIST20_LAYOUT}"
            )
        albums = sorted(p.name for p in artist_dir.iterdir() if p.is_dir() and not _is_hidden(p.name))
        if not albums:
            raise FileNotFoundError(
                f"artist20: artist folder {artist_dir} holds no album folder.\nExpected layout:\n{ARTIST20_LAYOUT}"
            )
        tree[artist] = {}
        for album in albums:
            tracks = {
                Path(name).stem: str(artist_dir / album / name)
                for name in sorted(os.listdir(artist_dir / album))
                if not _is_hidden(name) and Path(name).suffix.lower() in AUDIO_SUFFIXES
            }
            if not tracks:
                raise FileNotFoundError(
                    f"artist20: album folder {artist_dir / album} holds no audio track "
                    f"({', '.join(AUDIO_SUFFIXES)}).\nExpected layout:\n{ARTIST20_LAYOUT}"
                )
            tree[artist][album] = tracks
    return tree


def artist20_album_split(
    albums_by_artist: Dict[str, Sequence[str]], split: str, seed: int = 0
) -> Dict[str, Dict[str, str]]:
    """``{artist: {album: "train"|"validation"|"test"}}``: whole albums only, so none is in two splits.

    ``album``: per artist, sorted albums permuted with (`seed`, artist): 1 test, 1 validation, the
    rest train (>= 3 albums). ``ellis``: the same permutation, 2 test, 1 validation, the rest train
    (3 with 6 albums; >= 4 albums). ``fold<k>``: the 6-fold album jackknife over the sorted albums
    (exactly 6 per artist; `seed` unused): test = album k, validation = album (k + 1) mod 6,
    train = the other 4.
    """
    if split not in ARTIST20_SPLITS:
        raise ValueError(f"artist20: unknown split {split!r}; expected one of {', '.join(ARTIST20_SPLITS)}")
    result = {}
    for artist, albums in sorted(albums_by_artist.items()):
        albums = sorted(albums)
        if split.startswith("fold"):
            if len(albums) != 6:
                raise ValueError(
                    f"artist20: split={split!r} needs exactly 6 albums per artist; {artist} has {len(albums)}: {albums}"
                )
            k = int(split[4:])
            result[artist] = {
                a: "test" if i == k else "validation" if i == (k + 1) % 6 else "train" for i, a in enumerate(albums)
            }
            continue
        n_test = 1 if split == "album" else 2
        if len(albums) < n_test + 2:
            raise ValueError(
                f"artist20: split={split!r} needs at least {n_test + 2} albums per artist "
                f"({n_test} test, 1 validation, >= 1 train); {artist} has {len(albums)}: {albums}"
            )
        artist_key = int(hashlib.sha1(artist.encode()).hexdigest()[:8], 16)
        order = np.random.default_rng([seed, artist_key]).permutation(len(albums))
        result[artist] = {
            albums[i]: "test" if rank < n_test else "validation" if rank == n_test else "train"
            for rank, i in enumerate(order)
        }
    return result


def load_artist20(
    data_dir: Union[str, os.PathLike],
    split: str = "album",
    seed: int = 0,
    *,
    stems_dir: Optional[Union[str, os.PathLike]] = None,
    on_bad_file: str = "skip",
    num_workers: Optional[int] = None,
) -> DatasetDict:
    """artist20 songs: ``train`` / ``validation`` / ``test`` with ``audio`` (path), ``label``
    (``ClassLabel`` of the artist folders, sorted: the 20 artists for a full copy), ``song_id``
    (``<artist>/<album>/<track stem>``) and ``album`` (``<artist>/<album>``).

    split: ``"album"`` (SID papers: per artist 1 test, 1 validation, the rest train, albums
    shuffled with `seed`), ``"ellis"`` (3 / 1 / 2 albums) or ``"fold0"``…``"fold5"`` (6-fold album
    jackknife); see :func:`artist20_album_split`. No album is ever in two splits. Files are
    checked up front as in :func:`load_gtzan`; `stems_dir` as there.
    """
    check_on_bad_file(on_bad_file)
    if split not in ARTIST20_SPLITS:
        raise ValueError(f"artist20: unknown split {split!r}; expected one of {', '.join(ARTIST20_SPLITS)}")
    data_dir = resolve_data_dir(data_dir, "artist20")
    tree = find_artist20_files(data_dir)
    assignment = artist20_album_split({artist: list(albums) for artist, albums in tree.items()}, split, seed)
    artists = list(tree)
    splits: Dict[str, List[Song]] = {name: [] for name in SPLITS}
    for label, artist in enumerate(artists):
        for album, tracks in tree[artist].items():
            for stem, path in tracks.items():
                splits[assignment[artist][album]].append(
                    Song(f"{artist}/{album}/{stem}", label, path, f"{artist}/{album}")
                )
    return build_songs("artist20", splits, artists, True, on_bad_file, num_workers, stems_dir)
