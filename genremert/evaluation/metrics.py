"""Frame- and song-level metrics of the genremert classifiers: accuracy, F1, majority voting, confusion matrices.

A *frame* is one training-length slice of a song (the papers' wording); a *song* is scored by a majority vote over
its slices (Kuo et al. 2021; Lin et al. 2025). Everything here works on plain numpy arrays that hold **every** slice
of an evaluation split exactly once, in any order: under multi-process evaluation the Trainer gathers the logits,
the labels and the song indices of all ranks (``gather_for_metrics`` drops the duplicated padding of the last
batch) before :class:`LCAMetrics` counts a single vote.

Song voting (:func:`vote_songs`)
    - Every slice votes for its arg-max class. With a confidence ``threshold``, only slices whose top probability
      is strictly greater than it vote (the CRNN reference keeps slices that *exceed* 0.5); a song none of whose
      slices passes falls back to the votes of all its slices, so every song gets an answer.
    - The class with the most votes wins. Ties are broken by the summed probability of the tied classes over the
      voting slices, then by the lowest label id, so the result never depends on slice order.
    - The threshold is a hyper-parameter: :func:`choose_vote_threshold` picks it on the **validation** split and
      the caller applies it unchanged to the test split (the LCA reference code picked it on test, which inflates
      the song-level score).

F1
    ``f1`` is the **weighted** F1 (the metric of the singer-identification papers); ``f1_macro`` is reported next to
    it. Both use every label id of the model, so a class absent from a small split counts as zero support instead of
    shifting the label indices.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
)

from audio_genremert import SongAggregation, aggregate_songs


DEFAULT_THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(20))  # 0.0, 0.05, ..., 0.95


# ------------------------------------------------------------------------------------------------------------------
# Basic helpers
# ------------------------------------------------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis; `(slices, classes)` → probabilities of the same shape."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _check_inputs(probabilities: np.ndarray, labels: np.ndarray, song_index: np.ndarray | None = None) -> None:
    if probabilities.ndim != 2:
        raise ValueError(f"predictions must have shape (slices, classes), got shape {probabilities.shape}.")
    if labels.shape != (probabilities.shape[0],):
        raise ValueError(
            f"labels must have shape ({probabilities.shape[0]},) to match the predictions, got {labels.shape}."
        )
    if song_index is not None and song_index.shape != (probabilities.shape[0],):
        raise ValueError(
            f"song_index must have shape ({probabilities.shape[0]},) to match the predictions, got {song_index.shape}."
        )
    if probabilities.shape[0] == 0:
        raise ValueError("cannot score an empty evaluation set (0 slices).")


def classification_scores(predictions: np.ndarray, labels: np.ndarray, num_labels: int) -> dict:
    """Accuracy, weighted F1 (`f1`) and macro F1 of integer `predictions` against integer `labels`."""
    label_ids = list(range(num_labels))
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(
            f1_score(
                labels,
                predictions,
                labels=label_ids,
                average="weighted",
                zero_division=0,
            )
        ),
        "f1_macro": float(f1_score(labels, predictions, labels=label_ids, average="macro", zero_division=0)),
    }


# ------------------------------------------------------------------------------------------------------------------
# Song-level voting
# ------------------------------------------------------------------------------------------------------------------


def vote_songs(
    probabilities: np.ndarray,
    labels: np.ndarray,
    song_index: np.ndarray,
    threshold: float | None = None,
    aggregation: str = "vote",
) -> SongAggregation:
    """The song answer of every song of a split, by the rule of the published pipeline
    (`audio_genremert.aggregate_songs`: majority vote with an optional threshold, or the mean probability), plus the
    true class of each song (`.labels`).

    Args:
        probabilities: `(slices, classes)` softmax probabilities of every slice of the split.
        labels: `(slices,)` true class of each slice; all slices of a song must agree.
        song_index: `(slices,)` integer id of the song each slice comes from; any order, uneven counts.
        threshold: confidence threshold in [0, 1), or `None` for a plain majority vote.
        aggregation: `"vote"` or `"mean"` (`config.song_aggregation`).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    song_index = np.asarray(song_index).astype(np.int64)
    _check_inputs(probabilities, labels, song_index)
    songs = aggregate_songs(probabilities, song_index, aggregation, threshold)
    inverse = np.searchsorted(songs.song_index, song_index)  # slice → song row
    song_labels = np.full(len(songs.song_index), -1, dtype=np.int64)
    song_labels[inverse] = labels
    disagreeing = song_labels[inverse] != labels
    if disagreeing.any():
        bad = int(song_index[np.argmax(disagreeing)])
        found = sorted(set(labels[song_index == bad].tolist()))
        raise ValueError(f"the slices of song index {bad} carry different labels {found}; a song has one label.")
    songs.labels = song_labels
    return songs


def song_scores(
    probabilities: np.ndarray,
    labels: np.ndarray,
    song_index: np.ndarray,
    num_labels: int,
    threshold: float | None = None,
    aggregation: str = "vote",
) -> dict:
    """Song-level accuracy / weighted F1 / macro F1 of the song answers (majority vote or mean), plus the number of
    songs."""
    voted = vote_songs(probabilities, labels, song_index, threshold, aggregation)
    scores = classification_scores(voted.predictions, voted.labels, num_labels)
    scores["num_songs"] = len(voted.song_index)
    return scores


def bootstrap_song_intervals(
    song_labels: np.ndarray,
    song_predictions: np.ndarray,
    num_labels: int,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Percentile bootstrap intervals over songs (resampled with replacement, `seed` fixed) of the song accuracy and
    the weighted song F1: `{"accuracy": (low, high), "f1": (low, high)}`."""
    song_labels, song_predictions = np.asarray(song_labels), np.asarray(song_predictions)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(song_labels), size=(resamples, len(song_labels)))
    labels, predictions = song_labels[rows], song_predictions[rows]  # (resamples, songs)
    accuracy = (labels == predictions).mean(axis=1)
    # Weighted F1 of every resample at once (sklearn's definition, zero_division=0): per-class counts via bincount.
    offsets = (np.arange(resamples) * num_labels)[:, None]
    size = resamples * num_labels
    true_counts = np.bincount((labels + offsets).ravel(), minlength=size).reshape(resamples, num_labels)
    predicted_counts = np.bincount((predictions + offsets).ravel(), minlength=size).reshape(resamples, num_labels)
    hits = np.bincount((labels + offsets)[labels == predictions], minlength=size).reshape(resamples, num_labels)
    denominator = true_counts + predicted_counts
    per_class = np.divide(2 * hits, denominator, out=np.zeros(hits.shape, dtype=np.float64), where=denominator > 0)
    f1 = (per_class * true_counts).sum(axis=1) / len(song_labels)
    tail = 100 * (1 - confidence) / 2
    return {
        "accuracy": tuple(float(v) for v in np.percentile(accuracy, [tail, 100 - tail])),
        "f1": tuple(float(v) for v in np.percentile(f1, [tail, 100 - tail])),
    }


def choose_vote_threshold(
    probabilities: np.ndarray,
    labels: np.ndarray,
    song_index: np.ndarray,
    num_labels: int,
    grid: Sequence[float] = DEFAULT_THRESHOLD_GRID,
) -> tuple[float, float]:
    """The confidence threshold of the grid with the best song-level weighted F1 on this (validation) split.

    Ties go to the smallest threshold (the one closest to a plain vote). Returns `(threshold, f1)`.
    """
    if len(grid) == 0:
        raise ValueError("the threshold grid is empty.")
    best_threshold, best_f1 = None, -1.0
    for threshold in sorted(float(t) for t in grid):
        f1 = song_scores(probabilities, labels, song_index, num_labels, threshold)["f1"]
        if f1 > best_f1 + 1e-12:
            best_threshold, best_f1 = threshold, f1
    return best_threshold, best_f1


# ------------------------------------------------------------------------------------------------------------------
# Everything for one split
# ------------------------------------------------------------------------------------------------------------------


def split_predictions(predictions, label_ids) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Unpacks what the Trainer gathered: `(logits, counterfactual_logits or None, labels, song_index)`.

    `predictions` is the logits array, or a tuple `(logits, counterfactual_logits)` when the trainer asked the model
    for its counterfactual branch; `label_ids` is the tuple `(labels, song_index)` (the trainer's `label_names`).
    """
    counterfactual_logits = None
    if isinstance(predictions, (tuple, list)):
        logits = predictions[0]
        if len(predictions) > 1:
            counterfactual_logits = np.asarray(predictions[1])
    else:
        logits = predictions
    if not isinstance(label_ids, (tuple, list)) or len(label_ids) != 2:
        raise ValueError(
            "song-level metrics need the song index of every slice: the label ids must be the tuple (labels, "
            "song_index); set the trainer's `label_names=['labels', 'song_index']` and use the slice collator of "
            "run_classification.py."
        )
    labels, song_index = label_ids
    return (
        np.asarray(logits),
        counterfactual_logits,
        np.asarray(labels),
        np.asarray(song_index),
    )


def compute_split_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    song_index: np.ndarray,
    num_labels: int,
    counterfactual_logits: np.ndarray | None = None,
    vote_threshold: float | None = None,
    aggregation: str = "vote",
) -> dict:
    """Every scalar metric of one split (keys without the split prefix; the Trainer adds `eval_`/`test_`).

    Keys: `frame_accuracy`, `frame_f1` (weighted), `frame_f1_macro`, `song_accuracy`, `song_f1`, `song_f1_macro`
    (plain majority vote), `num_songs`, `num_slices`; with `vote_threshold`, also `song_accuracy_thresholded`,
    `song_f1_thresholded`, `vote_threshold`; with `counterfactual_logits`, the same frame/song keys prefixed
    `counterfactual_` (paper Table 4).
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels).astype(np.int64)
    song_index = np.asarray(song_index).astype(np.int64)
    probabilities = softmax(logits)
    _check_inputs(probabilities, labels, song_index)
    metrics = {"num_slices": len(labels)}

    def add_branch(prefix: str, branch_probabilities: np.ndarray, with_threshold: bool) -> None:
        frame = classification_scores(branch_probabilities.argmax(axis=1), labels, num_labels)
        for key, value in frame.items():
            metrics[f"{prefix}frame_{key}"] = value
        song = song_scores(branch_probabilities, labels, song_index, num_labels, aggregation=aggregation)
        metrics[f"{prefix}num_songs"] = song.pop("num_songs")
        for key, value in song.items():
            metrics[f"{prefix}song_{key}"] = value
        if not prefix:  # the uncertainty of one run's song scores: a bootstrap over the split's songs
            voted = vote_songs(branch_probabilities, labels, song_index, aggregation=aggregation)
            for key, (low, high) in bootstrap_song_intervals(voted.labels, voted.predictions, num_labels).items():
                metrics[f"song_{key}_ci_low"], metrics[f"song_{key}_ci_high"] = low, high
        if with_threshold and vote_threshold is not None and aggregation == "vote":
            thresholded = song_scores(branch_probabilities, labels, song_index, num_labels, vote_threshold)
            metrics[f"{prefix}song_accuracy_thresholded"] = thresholded["accuracy"]
            metrics[f"{prefix}song_f1_thresholded"] = thresholded["f1"]

    add_branch("", probabilities, with_threshold=True)
    if vote_threshold is not None:
        metrics["vote_threshold"] = float(vote_threshold)
    if counterfactual_logits is not None:
        add_branch("counterfactual_", softmax(counterfactual_logits), with_threshold=False)
        metrics.pop("counterfactual_num_songs")
    return metrics


class LCAMetrics:
    """`compute_metrics` for the Trainer: frame and song metrics of the main (and counterfactual) branch.

    `vote_threshold` (set by the training script after choosing it on validation) adds the thresholded song-level
    scores; the plain majority vote is always reported.
    """

    def __init__(self, num_labels: int, vote_threshold: float | None = None):
        self.num_labels = num_labels
        self.vote_threshold = vote_threshold

    def __call__(self, eval_prediction) -> dict:
        logits, counterfactual_logits, labels, song_index = split_predictions(
            eval_prediction.predictions, eval_prediction.label_ids
        )
        return compute_split_metrics(
            logits,
            labels,
            song_index,
            self.num_labels,
            counterfactual_logits,
            self.vote_threshold,
        )


# ------------------------------------------------------------------------------------------------------------------
# Reports: per-class scores and confusion matrices
# ------------------------------------------------------------------------------------------------------------------


def per_class_report(predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str]) -> dict:
    """scikit-learn's classification report as a dict: precision / recall / F1 / support per class and averages."""
    return classification_report(
        labels,
        predictions,
        labels=list(range(len(label_names))),
        target_names=list(label_names),
        output_dict=True,
        zero_division=0,
    )


def save_confusion_matrix(
    predictions: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    path_stem: str,
    title: str,
) -> np.ndarray:
    """Writes `<path_stem>.json` (counts, rows = true class) and `<path_stem>.png`; returns the matrix.

    Both files are written to a temporary name first and renamed, so a crash never leaves a half-written file.
    """
    matrix = confusion_matrix(labels, predictions, labels=list(range(len(label_names))))  # (true, predicted)
    record = {
        "title": title,
        "labels": list(label_names),
        "rows": "true class",
        "columns": "predicted class",
        "matrix": matrix.tolist(),
    }
    tmp_json = f"{path_stem}.json.tmp"
    with open(tmp_json, "w") as handle:
        json.dump(record, handle, indent=1)
    os.replace(tmp_json, f"{path_stem}.json")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.45 * len(label_names) + 2.0)
    figure, axis = plt.subplots(figsize=(size, size))
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    axis.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            color = "white" if normalised[row, column] > 0.5 else "black"
            axis.text(
                column,
                row,
                str(matrix[row, column]),
                ha="center",
                va="center",
                color=color,
                fontsize=8,
            )
    axis.set_xticks(
        range(len(label_names)),
        labels=list(label_names),
        rotation=60,
        ha="right",
        fontsize=8,
    )
    axis.set_yticks(range(len(label_names)), labels=list(label_names), fontsize=8)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    figure.tight_layout()
    tmp_png = f"{path_stem}.tmp.png"
    figure.savefig(tmp_png, dpi=120)
    plt.close(figure)
    os.replace(tmp_png, f"{path_stem}.png")
    return matrix


def write_split_reports(
    output_dir: str,
    split_name: str,
    logits: np.ndarray,
    labels: np.ndarray,
    song_index: np.ndarray,
    label_names: Sequence[str],
    vote_threshold: float | None = None,
    aggregation: str = "vote",
) -> dict:
    """Confusion matrices (frame and song, PNG + JSON) and the per-class report of one split into `output_dir`.

    File names: `confusion_matrix_<split>_frame.{png,json}`, `confusion_matrix_<split>_song.{png,json}`,
    `classification_report_<split>.json`. The song matrix uses `vote_threshold` when given. Returns the report.
    """
    os.makedirs(output_dir, exist_ok=True)
    probabilities = softmax(logits)
    labels = np.asarray(labels).astype(np.int64)
    frame_predictions = probabilities.argmax(axis=1)
    if aggregation != "vote":
        vote_threshold = None
    voted = vote_songs(probabilities, labels, song_index, vote_threshold, aggregation)
    vote_name = (
        "mean probability"
        if aggregation == "mean"
        else "majority vote"
        if vote_threshold is None
        else f"vote, threshold {vote_threshold:g}"
    )
    save_confusion_matrix(
        frame_predictions,
        labels,
        label_names,
        os.path.join(output_dir, f"confusion_matrix_{split_name}_frame"),
        f"{split_name}: frames (slices)",
    )
    save_confusion_matrix(
        voted.predictions,
        voted.labels,
        label_names,
        os.path.join(output_dir, f"confusion_matrix_{split_name}_song"),
        f"{split_name}: songs ({vote_name})",
    )
    report = {
        "frame": per_class_report(frame_predictions, labels, label_names),
        "song": per_class_report(voted.predictions, voted.labels, label_names),
        "vote_threshold": vote_threshold,
    }
    tmp_path = os.path.join(output_dir, f"classification_report_{split_name}.json.tmp")
    with open(tmp_path, "w") as handle:
        json.dump(report, handle, indent=1)
    os.replace(tmp_path, os.path.join(output_dir, f"classification_report_{split_name}.json"))
    return report


__all__ = [
    "DEFAULT_THRESHOLD_GRID",
    "LCAMetrics",
    "SongAggregation",
    "choose_vote_threshold",
    "classification_scores",
    "compute_split_metrics",
    "per_class_report",
    "save_confusion_matrix",
    "softmax",
    "song_scores",
    "split_predictions",
    "vote_songs",
    "write_split_reports",
]
