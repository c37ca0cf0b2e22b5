"""The shortcut protocol of paper Fig. 1 in the training script: which class carries the band noise (the synthetic
benchmark's own, or `--bias_class NAME` on any dataset), and how strongly the predictions lean to it."""

from __future__ import annotations

import datasets
import numpy as np

from ..data.audio_files import BandNoise
from ..data.synthetic import synthetic_metadata
from .metrics import softmax, vote_songs


def shortcut_rates(logits, labels, song_index, bias_class: int, aggregation: str = "vote") -> dict:
    """How strongly a split's predictions lean to the biased class, by one decision rule for every row (the song
    answer of `aggregation` without a threshold, and the slices' arg-max): the rate at which songs / slices of the
    other classes are given the biased class, and the biased class's own recall."""
    probabilities = softmax(logits)
    labels = np.asarray(labels).astype(np.int64)
    frame_predictions = probabilities.argmax(axis=1)
    songs = vote_songs(probabilities, labels, song_index, aggregation=aggregation)
    rates = {}
    for level, truth, predicted in (("song", songs.labels, songs.predictions), ("frame", labels, frame_predictions)):
        others, own = truth != bias_class, truth == bias_class
        rates[f"{level}_biased_rate"] = (
            float((predicted[others] == bias_class).mean()) if others.any() else float("nan")
        )
        rates[f"{level}_bias_recall"] = float((predicted[own] == bias_class).mean()) if own.any() else float("nan")
    return rates


def shortcut_metrics(results: dict) -> dict:
    """The shortcut's size from the clean (`test`) and noisy (`test_noisy`) scores: the F1 gaps (clean − noisy; positive
    when the noise pulls songs to the biased class) and the growth of the biased-class rate with the noise."""
    metrics = {}
    for level in ("song", "frame"):
        if f"test_{level}_f1" in results and f"test_noisy_{level}_f1" in results:
            metrics[f"shortcut_{level}_f1_gap"] = results[f"test_{level}_f1"] - results[f"test_noisy_{level}_f1"]
        if f"test_{level}_biased_rate" in results and f"test_noisy_{level}_biased_rate" in results:
            metrics[f"shortcut_{level}_biased_rate_gap"] = (
                results[f"test_noisy_{level}_biased_rate"] - results[f"test_{level}_biased_rate"]
            )
    return metrics


def resolve_bias(data_args, songs: datasets.DatasetDict, label_names: list[str]):
    """`(bias class id or None, BandNoise or None, noisy flags per split or None)` of the shortcut protocol. The
    synthetic benchmark carries its own noise; on any other dataset `--bias_class` adds band noise to that class's
    training and validation songs, and a `test_noisy` split (the test songs, all with the noise) is added."""
    if data_args.dataset == "synthetic":
        metadata = synthetic_metadata(songs["train"])
        return metadata.get("bias_class"), None, None
    if data_args.bias_class is None:
        return None, None, None
    name = str(data_args.bias_class)
    if name in label_names:
        bias = label_names.index(name)
    elif name.isdigit() and int(name) < len(label_names):
        bias = int(name)
    else:
        raise ValueError(f"--bias_class {name!r} is neither a class name nor a class id of the dataset: {label_names}.")
    songs["test_noisy"] = songs["test"]
    noise = BandNoise(data_args.parsed_bias_band(), -float(data_args.bias_snr_db), data_args.split_seed)
    flags = {
        "train": [label == bias for label in songs["train"]["label"]],
        "validation": [label == bias for label in songs["validation"]["label"]],
        "test": [False] * len(songs["test"]),
        "test_noisy": [True] * len(songs["test"]),
    }
    return bias, noise, flags
