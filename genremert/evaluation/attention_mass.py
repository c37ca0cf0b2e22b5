"""Where an attention sits, against ground truth: the mass an attention puts on each role of frame (discriminative,
spurious, filler) on a dataset that knows its frame roles (`genremert.data.attention_benchmark`)."""

from __future__ import annotations

import numpy as np

from ..data.attention_benchmark import FRAME_ROLES


def attention_mass(attention: np.ndarray, frame_roles: np.ndarray) -> dict[str, float]:
    """`{role: mean over examples of the attention mass on that role's frames}` for `attention (n, frames)` (rows sum
    to 1) and `frame_roles (n, frames)` (ids of `FRAME_ROLES`). The masses of one example sum to its attention's sum."""
    attention = np.asarray(attention, dtype=np.float64)
    frame_roles = np.asarray(frame_roles)
    if attention.shape != frame_roles.shape:
        raise ValueError(f"attention {attention.shape} and frame_roles {frame_roles.shape} must have one shape.")
    return {
        role: float((attention * (frame_roles == index)).sum(axis=1).mean()) for index, role in enumerate(FRAME_ROLES)
    }


def mean_entropy(probabilities: np.ndarray) -> float:
    """Mean entropy (nats) of rows of class probabilities: how undecided a branch is."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    return float(-(probabilities * np.log(probabilities)).sum(axis=1).mean())


def prediction_scores(logits: np.ndarray, labels: np.ndarray, prefix: str) -> dict[str, float]:
    """Accuracy, mean entropy and the share of the most predicted class (1.0: a collapse to one class)."""
    logits = np.asarray(logits, dtype=np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predictions = logits.argmax(axis=1)
    return {
        f"{prefix}accuracy": float((predictions == np.asarray(labels)).mean()),
        f"{prefix}entropy": mean_entropy(probabilities),
        f"{prefix}top_class_share": float(np.bincount(predictions).max() / len(predictions)),
    }
