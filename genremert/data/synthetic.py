"""The synthetic singer benchmark as a song table: generated once (``synthetic_music``) into a cache and reused."""

from __future__ import annotations

import json
import os
from typing import Dict, Optional, Tuple, Union

from datasets import Dataset, DatasetDict, Value

from . import synthetic_music
from .songs import song_features


def load_synthetic(
    num_classes: int = 5,
    albums_per_class: int = 4,
    songs_per_album: int = 4,
    song_seconds: float = 20.0,
    sampling_rate: int = 16000,
    difficulty: float = 0.5,
    seed: int = 0,
    split: str = "album",
    bias_class: Optional[int] = None,
    bias_band_hz: Tuple[float, float] = (3000.0, 5000.0),
    bias_noise_db: float = -15.0,
    bias_mode: str = "everywhere",
    bias_burst_fraction: float = 0.3,
    bias_burst_seconds: float = 0.5,
    accompaniment_correlation: float = 0.6,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    num_workers: Optional[int] = None,
    attention_audio: Optional[Dict] = None,
) -> DatasetDict:
    """The synthetic singer dataset (see ``synthetic_music``), generated once into `cache_dir` and reused.

    Returns ``train``, ``validation``, ``test`` (clean) and ``test_noisy`` (the same test songs
    with band noise on every class; ``bias_mode="bursts"`` puts the noise on ``bias_burst_fraction``
    of the time only, in bursts of ``bias_burst_seconds``: a shortcut an attention can avoid). Columns: ``audio`` (path of a float wav at `sampling_rate`),
    ``label`` (``ClassLabel`` ``singer_0``…), ``song_id`` (``singer_k/album_a/song_s``), ``album``,
    ``noise_added`` (bool: this file carries the band noise). With ``bias_class=k`` the training
    songs of class k carry the noise (paper Fig. 1). ``split="album"`` keeps albums whole
    (1 test, 1 validation, the rest train per singer); ``split="song"`` spreads each album's songs
    over the splits (album leakage). :func:`synthetic_metadata` returns the bias settings.
    Default cache: ``~/.cache/genremert/synthetic/<hash of the parameters>`` (``$GENREMERT_CACHE``).

    ``attention_audio`` (off by default; a dict of ``attention_audio.AttentionAudioOptions`` fields, ``{}`` for their
    defaults) renders the same singers with the voice and a bias instrument on known frames instead, in a folder of
    their own (the plain songs and their cache keys are untouched): splits ``train``, ``validation``,
    ``test_in_distribution``, ``test_decorrelated``, ``test_anti_correlated``, with the ``frame_roles``,
    ``bias_instrument`` and ``bias_agrees`` columns of ``attention_audio.load_attention_audio``. It has no band noise,
    so it refuses ``bias_class``.
    """
    config = synthetic_music.SyntheticMusicConfig(
        num_classes=num_classes,
        albums_per_class=albums_per_class,
        songs_per_album=songs_per_album,
        song_seconds=song_seconds,
        sampling_rate=sampling_rate,
        difficulty=difficulty,
        seed=seed,
        split=split,
        bias_class=bias_class,
        bias_band_hz=tuple(bias_band_hz),
        bias_noise_db=bias_noise_db,
        bias_mode=bias_mode,
        bias_burst_fraction=bias_burst_fraction,
        bias_burst_seconds=bias_burst_seconds,
        accompaniment_correlation=accompaniment_correlation,
    )
    workers = num_workers if num_workers is not None else min(2, os.cpu_count() or 1)
    if attention_audio is not None:
        from .attention_audio import AttentionAudioOptions, attention_audio_splits

        if bias_class is not None:
            raise ValueError(
                f"bias_class={bias_class}: the attention_audio songs carry a bias instrument, not the band noise; "
                "leave bias_class unset"
            )
        splits = attention_audio_splits(config, AttentionAudioOptions.from_dict(attention_audio), cache_dir, workers)
        return DatasetDict(
            {name if name in ("train", "validation") else f"test_{name}": split for name, split in splits.items()}
        )
    generated = synthetic_music.generate_synthetic_music(config, cache_dir=cache_dir, num_workers=workers)
    metadata = generated.metadata()
    features = song_features(config.class_names, True, {"noise_added": Value("bool")})
    result = DatasetDict()
    for name in ("train", "validation", "test", "test_noisy"):
        source = "test" if name == "test_noisy" else name
        rows = sorted((s for s in generated.songs if s.split == source), key=lambda s: s.song_id)
        noisy = [name == "test_noisy" or (name == "train" and s.label == bias_class) for s in rows]
        columns = {
            "audio": [s.noisy_path if n else s.clean_path for s, n in zip(rows, noisy)],
            "label": [s.label for s in rows],
            "song_id": [s.song_id for s in rows],
            "album": [s.album for s in rows],
            "noise_added": noisy,
        }
        dataset = Dataset.from_dict(columns, features=features)
        dataset.info.description = json.dumps({"genremert_synthetic": metadata})
        result[name] = dataset
    return result


def synthetic_metadata(dataset: Union[Dataset, DatasetDict]) -> Dict:
    """The generator settings of a :func:`load_synthetic` split: ``bias_class``, ``bias_class_name``,
    ``bias_band_hz``, ``bias_noise_db``, ``class_names``, ``sampling_rate``, ``difficulty``, ``root``, ``config``."""
    if isinstance(dataset, DatasetDict):
        dataset = next(iter(dataset.values()))
    try:
        return json.loads(dataset.info.description)["genremert_synthetic"]
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(
            "this dataset was not made by load_synthetic (no generator metadata in info.description)"
        ) from error
