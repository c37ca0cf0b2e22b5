"""Tagging metrics against sklearn on crafted data, song-level means, and the excluded-tag case."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from genremert import tag_scores, tagging_metrics


TAGS = ["rock", "guitar", "vocal", "quiet"]


def crafted():
    rng = np.random.default_rng(0)
    song_tags = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 0], [0, 0, 1, 0], [1, 1, 1, 0], [0, 1, 0, 0]])
    song_index = np.repeat(np.arange(6), 3)  # three slices a song
    targets = song_tags[song_index]
    probabilities = np.clip(0.6 * targets + 0.4 * rng.random(targets.shape), 0, 1)
    return probabilities, targets, song_index, song_tags


def test_frame_scores_match_sklearn_and_the_tag_without_positives_is_named():
    probabilities, targets, _, _ = crafted()
    scores = tag_scores(probabilities, targets, TAGS)
    assert scores["excluded_tags"] == ["quiet"]  # no positive anywhere: no ROC-AUC, no AP
    for index, tag in enumerate(TAGS[:3]):
        assert scores["per_tag"][tag]["roc_auc"] == pytest.approx(
            roc_auc_score(targets[:, index], probabilities[:, index])
        )
        assert scores["per_tag"][tag]["pr_auc"] == pytest.approx(
            average_precision_score(targets[:, index], probabilities[:, index])
        )
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(targets[:, :3], probabilities[:, :3], average="macro"))
    assert scores["pr_auc"] == pytest.approx(
        average_precision_score(targets[:, :3], probabilities[:, :3], average="macro")
    )


def test_song_level_is_the_mean_of_the_slices():
    probabilities, targets, song_index, song_tags = crafted()
    order = np.random.default_rng(1).permutation(len(song_index))  # slices in any order
    metrics = tagging_metrics(probabilities[order], targets[order], song_index[order], TAGS)
    song_probabilities = np.stack([probabilities[song_index == s].mean(axis=0) for s in range(6)])
    assert metrics["song_roc_auc"] == pytest.approx(
        roc_auc_score(song_tags[:, :3], song_probabilities[:, :3], average="macro")
    )
    assert metrics["song_excluded_tags"] == ["quiet"] and metrics["frame_excluded_tags"] == ["quiet"]
    bad = targets.copy()
    bad[1, 0] = 1 - bad[1, 0]
    with pytest.raises(ValueError, match="song index 0 carry different tags"):
        tagging_metrics(probabilities, bad, song_index, TAGS)
