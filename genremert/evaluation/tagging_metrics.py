"""Multi-label (tagging) metrics: per-tag and macro ROC-AUC and PR-AUC (average precision), at frame level and at song
level (a song's probabilities = the mean of its slices', the rule of `audio_genremert.aggregate_songs(..., "mean")`).

A tag with no positive or no negative example in a split has no ROC-AUC or average precision: it is excluded from the
macro means and *named* in `excluded_tags` (other tagging code silently averages in a 0.5 or a NaN).

`compute_tagging_split_metrics` gives the scalar metrics of one split (what the Trainer logs), `TaggingMetrics` is the
Trainer's `compute_metrics` for multi-label models, and `write_tagging_reports` writes the per-tag scores and the
excluded tags of a split to `<split>_tag_report.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from audio_genremert import aggregate_songs

from .metrics import split_predictions


def tag_scores(probabilities: np.ndarray, targets: np.ndarray, tag_names: Sequence[str]) -> dict:
    """`{"roc_auc", "pr_auc"}` (macro over the scorable tags), `"per_tag": {tag: {"roc_auc", "pr_auc"}}` and
    `"excluded_tags"` (tags without a positive or without a negative in `targets`), from `(examples, tags)` arrays."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets).astype(np.int64)
    if probabilities.shape != targets.shape or probabilities.ndim != 2 or probabilities.shape[1] != len(tag_names):
        raise ValueError(
            f"probabilities {probabilities.shape} and targets {targets.shape} must both be (examples, "
            f"{len(tag_names)} tags)."
        )
    per_tag, excluded = {}, []
    for index, tag in enumerate(tag_names):
        column = targets[:, index]
        if column.min() == column.max():
            excluded.append(tag)
            continue
        per_tag[tag] = {
            "roc_auc": float(roc_auc_score(column, probabilities[:, index])),
            "pr_auc": float(average_precision_score(column, probabilities[:, index])),
        }
    macro = {
        name: float(np.mean([scores[name] for scores in per_tag.values()])) if per_tag else float("nan")
        for name in ("roc_auc", "pr_auc")
    }
    return {**macro, "per_tag": per_tag, "excluded_tags": excluded}


def tagging_metrics(
    probabilities: np.ndarray, targets: np.ndarray, song_index: np.ndarray, tag_names: Sequence[str]
) -> dict:
    """Frame- and song-level tag scores of one split: `frame_roc_auc`, `frame_pr_auc`, `song_roc_auc`, `song_pr_auc`,
    the per-tag dictionaries and the excluded tags of each level. All slices of a song must carry the same tags."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets).astype(np.int64)
    song_index = np.asarray(song_index).astype(np.int64)
    songs = aggregate_songs(probabilities, song_index, aggregation="mean")
    rows = np.searchsorted(songs.song_index, song_index)
    song_targets = np.zeros((len(songs.song_index), targets.shape[1]), dtype=np.int64)
    song_targets[rows] = targets
    if not np.array_equal(song_targets[rows], targets):
        bad = int(song_index[np.argmax((song_targets[rows] != targets).any(axis=1))])
        raise ValueError(f"the slices of song index {bad} carry different tags; a song has one set of tags.")
    frame = tag_scores(probabilities, targets, tag_names)
    song = tag_scores(songs.scores, song_targets, tag_names)
    return {
        "frame_roc_auc": frame["roc_auc"],
        "frame_pr_auc": frame["pr_auc"],
        "song_roc_auc": song["roc_auc"],
        "song_pr_auc": song["pr_auc"],
        "frame_per_tag": frame["per_tag"],
        "song_per_tag": song["per_tag"],
        "frame_excluded_tags": frame["excluded_tags"],
        "song_excluded_tags": song["excluded_tags"],
    }


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, elementwise."""
    logits = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -logits))


def compute_tagging_split_metrics(
    logits: np.ndarray,
    targets: np.ndarray,
    song_index: np.ndarray,
    tag_names: Sequence[str],
    counterfactual_logits: np.ndarray | None = None,
) -> dict:
    """The scalar metrics of one split of a multi-label model (keys without the split prefix): `frame_roc_auc`,
    `frame_pr_auc`, `song_roc_auc`, `song_pr_auc` (macro over the scorable tags), `frame_num_excluded_tags`,
    `song_num_excluded_tags`, `num_slices`, `num_songs`; with `counterfactual_logits`, the four AUCs of that branch
    prefixed `counterfactual_`. The names of the excluded tags are in `write_tagging_reports`' file."""
    scores = tagging_metrics(sigmoid(logits), targets, song_index, tag_names)
    metrics = {key: scores[key] for key in ("frame_roc_auc", "frame_pr_auc", "song_roc_auc", "song_pr_auc")}
    metrics["frame_num_excluded_tags"] = len(scores["frame_excluded_tags"])
    metrics["song_num_excluded_tags"] = len(scores["song_excluded_tags"])
    metrics["num_slices"] = int(len(song_index))
    metrics["num_songs"] = int(len(np.unique(song_index)))
    if counterfactual_logits is not None:
        branch = tagging_metrics(sigmoid(counterfactual_logits), targets, song_index, tag_names)
        for key in ("frame_roc_auc", "frame_pr_auc", "song_roc_auc", "song_pr_auc"):
            metrics[f"counterfactual_{key}"] = branch[key]
    return metrics


class TaggingMetrics:
    """`compute_metrics` for the Trainer on a multi-label model: frame and song ROC-AUC / PR-AUC of the main (and
    counterfactual) branch, from the gathered logits, multi-hot labels and song indices."""

    def __init__(self, tag_names: Sequence[str]):
        self.tag_names = list(tag_names)

    def __call__(self, eval_prediction) -> dict:
        logits, counterfactual_logits, targets, song_index = split_predictions(
            eval_prediction.predictions, eval_prediction.label_ids
        )
        return compute_tagging_split_metrics(logits, targets, song_index, self.tag_names, counterfactual_logits)


def write_tagging_reports(
    output_dir: str, split_name: str, logits: np.ndarray, targets: np.ndarray, song_index: np.ndarray, tag_names
) -> dict:
    """`<output_dir>/<split_name>_tag_report.json`: per-tag ROC-AUC / PR-AUC at frame and song level, the macro means
    and the excluded tags by name. Returns what it wrote."""
    scores = tagging_metrics(sigmoid(logits), targets, song_index, tag_names)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, f"{split_name}_tag_report.json")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(scores, handle, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    return scores
