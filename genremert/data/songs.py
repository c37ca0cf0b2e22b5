"""The song table every corpus loader builds: one row per song (``audio`` path, ``label``, ``song_id``, ``album``),
checked up front, split into ``train`` / ``validation`` / ``test`` with no group (album, MTAT song) in two splits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .audio_files import BadAudioFile, BadAudioFilesError, handle_bad_files, validate_audio_files


SPLITS = ("train", "validation", "test")
SPLIT_LISTS_DIR = Path(__file__).resolve().parent / "split_lists"


@dataclass
class Song:
    song_id: str
    label: Union[int, List[int]]  # a class id, or (tagging) the list of the song's tag ids
    path: str
    album: Optional[str] = None  # the group that never straddles two splits (album; MTAT: the song of a clip)


def song_features(
    class_names: Sequence[str], with_album: bool, extra: Optional[Dict] = None, multi_label: bool = False
) -> Features:
    label = ClassLabel(names=list(class_names))
    features = {"audio": Value("string"), "label": [label] if multi_label else label, "song_id": Value("string")}
    if with_album:
        features["album"] = Value("string")
    features.update(extra or {})
    return Features(features)


def build_songs(
    dataset: str,
    splits: Dict[str, List[Song]],
    class_names: Sequence[str],
    with_album: bool,
    on_bad_file: str,
    num_workers: Optional[int],
    stems_dir: Optional[Union[str, os.PathLike]],
    missing: Sequence[BadAudioFile] = (),
    allow_missing_files: bool = False,
    multi_label: bool = False,
) -> DatasetDict:
    """Swap in vocal stems if asked, validate every file, report them (with `missing`, the listed
    songs absent from disk) in one go, drop the unusable ones, build the DatasetDict.

    Refused up front, before any training: listed songs missing from disk (unless
    `allow_missing_files`), and a split left without a single song."""
    if missing and not allow_missing_files:
        listed = {name: len(songs) for name, songs in splits.items()}
        per_split = {name: sum(f" {name} split" in b.reason for b in missing) for name in listed}
        counts = ", ".join(f"{name} {per_split[name]} of {listed[name] + per_split[name]}" for name in listed)
        examples = "\n".join(f"  {b.path}" for b in sorted(missing, key=lambda b: b.path)[:5])
        raise BadAudioFilesError(
            dataset,
            list(missing),
            summary=(
                f"{dataset}: {len(missing)} song(s) of the split lists are not on disk ({counts} missing), e.g.\n"
                f"{examples}\nIs the copy complete and the folder right? Pass allow_missing_files=True "
                "(--allow_missing_files) to train on the songs that are there."
            ),
        )
    if stems_dir is not None:
        splits = _use_stems(dataset, splits, stems_dir)
    bad = validate_audio_files([s.path for songs in splits.values() for s in songs], num_workers)
    handle_bad_files(dataset, sorted([*missing, *bad], key=lambda b: b.path), on_bad_file)
    if bad:
        bad_paths = {b.path for b in bad}
        splits = {name: [s for s in songs if s.path not in bad_paths] for name, songs in splits.items()}
    empty = [name for name in SPLITS if not splits[name]]
    if empty:
        counts = ", ".join(f"{name} {len(splits[name])}" for name in SPLITS)
        raise ValueError(
            f"{dataset}: the {' and '.join(empty)} split(s) hold no song ({counts} songs after dropping "
            f"{len(bad)} unusable and {len(missing)} missing file(s)): too few usable songs for this split scheme. "
            "Check the folder, or use a split whose lists match the copy."
        )
    features = song_features(class_names, with_album, multi_label=multi_label)
    result = DatasetDict()
    for name in SPLITS:
        songs = sorted(splits[name], key=lambda s: s.song_id)
        columns = {
            "audio": [s.path for s in songs],
            "label": [s.label for s in songs],
            "song_id": [s.song_id for s in songs],
        }
        if with_album:
            columns["album"] = [s.album for s in songs]
        result[name] = Dataset.from_dict(columns, features=features)
    return result


def _use_stems(dataset: str, splits: Dict[str, List[Song]], stems_dir) -> Dict[str, List[Song]]:
    """Point every song at ``<stems_dir>/<song_id>/vocals.wav``; every missing stem is one error."""
    stems_dir = Path(stems_dir)
    if not stems_dir.is_dir():
        raise FileNotFoundError(
            f"{dataset}: stems_dir {stems_dir} does not exist or is not a folder "
            f"(expected <stems_dir>/<song_id>/vocals.wav)"
        )
    missing = []
    result = {}
    for name, songs in splits.items():
        result[name] = []
        for s in songs:
            stem = stems_dir / s.song_id / "vocals.wav"
            if not stem.is_file():
                missing.append(f"  song {s.song_id}: {stem}")
            result[name].append(Song(s.song_id, s.label, str(stem), s.album))
    if missing:
        raise FileNotFoundError(
            f"{dataset}: {len(missing)} vocal stem(s) missing under {stems_dir} "
            f"(expected <stems_dir>/<song_id>/vocals.wav):\n" + "\n".join(missing)
        )
    return result


def resolve_data_dir(data_dir, dataset: str, revision: Optional[str] = None) -> Path:
    """The folder of a dataset: `data_dir` itself, the extraction of an archive given as `data_dir` (GTZAN's
    `genres.tar.gz`, artist20's `artist20-mp3s-32k.tgz`; extracted once, safely, beside it), or for GTZAN without
    `data_dir` the archive fetched from the Hub (`marsyas/gtzan`)."""
    from .archives import extract_archive, extracted_folder, fetch_gtzan, is_archive

    if data_dir is None:
        if dataset != "gtzan":
            raise ValueError(f"{dataset}: data_dir is required (the folder holding the audio, or its archive).")
        return fetch_gtzan(revision)
    if is_archive(data_dir):
        return extract_archive(data_dir, extracted_folder(data_dir))
    return Path(data_dir)
