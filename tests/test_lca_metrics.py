"""Song voting and metrics on crafted predictions: ties, thresholds, one-slice songs, uneven slice counts."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from genremert import LCAMetrics, choose_vote_threshold, song_scores, vote_songs
from genremert.evaluation.metrics import compute_split_metrics, write_split_reports


def probs(*rows):
    return np.array(rows, dtype=np.float64)


def test_majority_vote_with_uneven_slice_counts_and_one_slice_song():
    # song 7: 3 slices (2 × class 1, 1 × class 0) → 1; song 3: one slice → 2; song 5: 4 slices, 3 × class 0 → 0.
    probabilities = probs(
        [0.1, 0.8, 0.1],
        [0.9, 0.05, 0.05],
        [0.2, 0.7, 0.1],
        [0.1, 0.1, 0.8],
        [0.6, 0.3, 0.1],
        [0.7, 0.2, 0.1],
        [0.1, 0.1, 0.8],
        [0.5, 0.4, 0.1],
    )
    labels = np.array([1, 1, 1, 2, 0, 0, 0, 0])
    song_index = np.array([7, 7, 7, 3, 5, 5, 5, 5])
    voted = vote_songs(probabilities, labels, song_index)
    assert voted.song_index.tolist() == [3, 5, 7]
    assert voted.predictions.tolist() == [2, 0, 1]
    assert voted.labels.tolist() == [2, 0, 1]
    assert voted.num_slices.tolist() == [1, 4, 3]
    assert voted.votes[1].tolist() == [3, 0, 1]


def test_vote_does_not_depend_on_slice_order():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=30)
    song_index = rng.integers(0, 6, size=30)
    labels = song_index % 4
    order = rng.permutation(30)
    first = vote_songs(probabilities, labels, song_index, threshold=0.3)
    second = vote_songs(probabilities[order], labels[order], song_index[order], threshold=0.3)
    assert first.predictions.tolist() == second.predictions.tolist()


def test_tie_is_broken_by_summed_probability_then_lowest_label():
    # One vote each for classes 0 and 2; class 2's slice is more confident → summed probability decides for 2.
    voted = vote_songs(probs([0.5, 0.2, 0.3], [0.1, 0.1, 0.8]), np.array([2, 2]), np.array([0, 0]))
    assert voted.predictions.tolist() == [2]
    # Exact tie in votes and in summed probability → the lowest label id.
    voted = vote_songs(probs([0.6, 0.4], [0.4, 0.6]), np.array([1, 1]), np.array([0, 0]))
    assert voted.predictions.tolist() == [0]


def test_threshold_drops_unconfident_slices():
    # Two unconfident votes for class 0 and one confident vote for class 1.
    probabilities = probs([0.45, 0.3, 0.25], [0.4, 0.35, 0.25], [0.05, 0.9, 0.05])
    labels, song_index = np.array([1, 1, 1]), np.array([0, 0, 0])
    assert vote_songs(probabilities, labels, song_index).predictions.tolist() == [0]
    voted = vote_songs(probabilities, labels, song_index, threshold=0.5)
    assert voted.predictions.tolist() == [1]
    assert voted.num_voting.tolist() == [1]
    assert not voted.fell_back[0]


def test_threshold_is_strict_and_falls_back_when_no_slice_passes():
    # Top probabilities 0.5 and 0.6: threshold 0.6 keeps neither (strictly greater), so all slices vote.
    probabilities = probs([0.5, 0.5, 0.0], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1])
    labels, song_index = np.array([0, 0, 0]), np.array([4, 4, 4])
    voted = vote_songs(probabilities, labels, song_index, threshold=0.6)
    assert voted.fell_back.tolist() == [True]
    assert voted.num_voting.tolist() == [3]
    assert voted.predictions.tolist() == [0]  # votes 0, 2, 0 (argmax of the tied first row is 0)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="different labels"):
        vote_songs(probs([1.0, 0.0], [0.0, 1.0]), np.array([0, 1]), np.array([3, 3]))
    with pytest.raises(ValueError, match="threshold"):
        vote_songs(probs([1.0, 0.0]), np.array([0]), np.array([0]), threshold=1.0)
    with pytest.raises(ValueError, match="song_index"):
        vote_songs(probs([1.0, 0.0]), np.array([0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        vote_songs(np.zeros((0, 2)), np.zeros(0), np.zeros(0))


def test_threshold_is_chosen_on_the_given_split_and_prefers_the_smallest():
    # Song 0 (label 1): unconfident wrong votes, one confident right vote → needs a threshold ≥ 0.45.
    # Song 1 (label 0): all right.
    probabilities = probs(
        [0.45, 0.3, 0.25],
        [0.45, 0.35, 0.2],
        [0.05, 0.9, 0.05],
        [0.8, 0.1, 0.1],
        [0.7, 0.2, 0.1],
    )
    labels, song_index = np.array([1, 1, 1, 0, 0]), np.array([0, 0, 0, 1, 1])
    threshold, f1 = choose_vote_threshold(probabilities, labels, song_index, num_labels=3)
    assert threshold == pytest.approx(0.45)
    assert f1 == pytest.approx(1.0)
    assert song_scores(probabilities, labels, song_index, 3)["accuracy"] == pytest.approx(0.5)
    # A grid that cannot help: the smallest threshold wins the tie.
    threshold, _ = choose_vote_threshold(probabilities, labels, song_index, 3, grid=[0.2, 0.0, 0.1])
    assert threshold == 0.0


def test_split_metrics_frame_song_and_counterfactual_branch():
    logits = np.log(probs([0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]))
    labels = np.array([0, 0, 1, 1])
    song_index = np.array([0, 0, 1, 1])
    cf_logits = np.log(probs([0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]))
    metrics = compute_split_metrics(
        logits,
        labels,
        song_index,
        3,
        counterfactual_logits=cf_logits,
        vote_threshold=0.65,
    )
    assert metrics["frame_accuracy"] == pytest.approx(0.75)
    # Frame: class 0 P=1 R=1, class 1 P=1 R=0.5 → F1 2/3; weighted by support (2, 2) → (1 + 2/3) / 2.
    assert metrics["frame_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["frame_f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    # Song 1 ties (one vote for 1 at 0.7, one for 2 at 0.7; summed prob 0.9 vs 0.8) → class 1: all songs right.
    assert metrics["song_accuracy"] == pytest.approx(1.0)
    assert metrics["num_songs"] == 2 and metrics["num_slices"] == 4
    # Threshold 0.65: song 0 keeps its first slice (0.7), song 1 keeps both (0.7 each) → still right.
    assert metrics["song_accuracy_thresholded"] == pytest.approx(1.0)
    assert metrics["vote_threshold"] == 0.65
    # Counterfactual branch always says 1: frame accuracy 0.5, song accuracy 0.5.
    assert metrics["counterfactual_frame_accuracy"] == pytest.approx(0.5)
    assert metrics["counterfactual_song_accuracy"] == pytest.approx(0.5)


def test_metrics_callable_accepts_trainer_predictions():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    prediction = SimpleNamespace(predictions=logits, label_ids=(np.array([0, 1, 1]), np.array([0, 1, 1])))
    metrics = LCAMetrics(num_labels=2)(prediction)
    assert metrics["frame_accuracy"] == 1.0 and metrics["song_f1"] == 1.0
    assert "counterfactual_frame_accuracy" not in metrics
    with pytest.raises(ValueError, match="song_index"):
        LCAMetrics(num_labels=2)(SimpleNamespace(predictions=logits, label_ids=np.array([0, 1, 1])))


def test_reports_write_png_and_json(tmp_path):
    logits = np.log(probs([0.7, 0.3], [0.6, 0.4], [0.2, 0.8]))
    report = write_split_reports(
        str(tmp_path),
        "test",
        logits,
        np.array([0, 1, 1]),
        np.array([0, 1, 1]),
        ["a", "b"],
    )
    frame = json.loads((tmp_path / "confusion_matrix_test_frame.json").read_text())
    song = json.loads((tmp_path / "confusion_matrix_test_song.json").read_text())
    assert frame["matrix"] == [[1, 0], [1, 1]]
    # Song 1: one vote each; summed probability 0.6 + 0.2 for class 0 < 0.4 + 0.8 for class 1 → class 1.
    assert song["matrix"] == [[1, 0], [0, 1]]
    assert (tmp_path / "confusion_matrix_test_frame.png").stat().st_size > 1000
    assert (tmp_path / "confusion_matrix_test_song.png").exists()
    assert report["frame"]["a"]["recall"] == 1.0
