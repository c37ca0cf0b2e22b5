"""A ground-truth attention benchmark: sequences of frames whose roles are known, so that where an attention goes can be
scored, and a shortcut that an attention *can* route around.

Every example is `num_frames` frames of `dim` features. Each frame has a role (`FRAME_ROLES`):

- **discriminative** frames carry the class, weakly: `marker_d + class_strength·μ_y + noise`;
- **spurious** frames carry a strong cue: `marker_s + cue_strength·ν_c + noise`, where the cue `c` agrees with the
  class with probability `rho` in training and validation (the shortcut);
- **filler** frames are noise.

The role markers, class prototypes and cue prototypes are orthonormal directions with zero mean over the features, so
the *mean* of a frame tells nothing of its role (GenreMERT's reference time attention, which scores the mean, cannot
route; an attention reading the whole frame can), and a frame's role is visible to content, never its position.

Bias structure (`bias_structure`):
- `"exclusive"` (the paper's Fig. 1): one cue per class; attending to the cue gives a confident prediction.
- `"shared"` (the paper's Characteristic 2): each cue spans `classes_per_cue` classes; attending to it alone leaves the
  prediction uncertain among them, which is what LCA's entropy terms expect of a misleading region.

Test splits: `in_distribution` (the cue agrees with probability `rho`), `decorrelated` (the cue is drawn independently
of the class) and `anti_correlated` (the cue never agrees). Every split is a pure function of `(config, split)`: the
world (prototypes) comes from `world_seed`, each split from its own stream, so the training seed of a model never moves
the data and every arm of a study sees the same examples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


FRAME_ROLES = ("filler", "discriminative", "spurious")  # role ids 0, 1, 2 in `frame_roles`
BIAS_STRUCTURES = ("shared", "exclusive")
TEST_SPLITS = ("in_distribution", "decorrelated", "anti_correlated")
SPLITS = ("train", "validation", *TEST_SPLITS)
_SPLIT_STREAMS = {name: index + 1 for index, name in enumerate(SPLITS)}


@dataclass(frozen=True)
class FrameBenchmarkConfig:
    """The generator's settings (every field has a reason in the module docstring)."""

    num_classes: int = 4
    num_frames: int = 24
    dim: int = 32
    num_discriminative: int = 4  # frames carrying the class (weakly)
    num_spurious: int = 4  # frames carrying the cue (strongly)
    class_strength: float = 1.0  # per-frame class signal, in units of the noise's standard deviation per direction
    cue_strength: float = 3.0
    marker_strength: float = 2.0  # the role markers: what lets an attention that reads the frame find the roles
    noise_std: float = 1.0
    rho: float = 0.9  # P(cue agrees with the class) in train and validation
    bias_structure: str = "shared"
    classes_per_cue: int = 2  # "shared" only
    num_train: int = 2000
    num_validation: int = 1000
    num_test: int = 2000  # per test split
    world_seed: int = 0

    def __post_init__(self):
        if self.bias_structure not in BIAS_STRUCTURES:
            raise ValueError(f"bias_structure must be one of {BIAS_STRUCTURES}, got {self.bias_structure!r}.")
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"rho must be in [0, 1], got {self.rho}.")
        if self.num_discriminative < 1 or self.num_spurious < 1:
            raise ValueError("num_discriminative and num_spurious must be at least 1.")
        if self.num_discriminative + self.num_spurious > self.num_frames:
            raise ValueError(
                f"num_discriminative + num_spurious ({self.num_discriminative + self.num_spurious}) exceeds "
                f"num_frames ({self.num_frames})."
            )
        if self.bias_structure == "shared" and (
            self.classes_per_cue < 2 or self.num_classes % self.classes_per_cue != 0
        ):
            raise ValueError(
                f"shared bias: classes_per_cue ({self.classes_per_cue}) must be ≥ 2 and divide num_classes "
                f"({self.num_classes})."
            )
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}.")
        if self.num_directions > self.dim - 1:
            raise ValueError(
                f"dim {self.dim} is too small: {self.num_directions} orthogonal zero-mean directions are needed."
            )

    @property
    def num_cues(self) -> int:
        return self.num_classes // self.classes_per_cue if self.bias_structure == "shared" else self.num_classes

    @property
    def num_directions(self) -> int:
        return 2 + self.num_classes + self.num_cues

    def cue_of_class(self, label: np.ndarray) -> np.ndarray:
        """The cue that agrees with each class."""
        return label // self.classes_per_cue if self.bias_structure == "shared" else label

    def replace(self, **changes) -> FrameBenchmarkConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class FrameSplit:
    """One split: `features (n, frames, dim)` float32, `labels (n,)`, `cues (n,)`, `frame_roles (n, frames)` (ids of
    `FRAME_ROLES`), `cue_agrees (n,)` bool."""

    features: np.ndarray
    labels: np.ndarray
    cues: np.ndarray
    frame_roles: np.ndarray
    cue_agrees: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def role_mask(self, role: str) -> np.ndarray:
        """`(n, frames)` bool: the frames of `role`."""
        return self.frame_roles == FRAME_ROLES.index(role)


def world_directions(config: FrameBenchmarkConfig) -> dict[str, np.ndarray]:
    """The orthonormal, zero-mean directions of the world: `markers (2, dim)` (discriminative, spurious), `classes
    (num_classes, dim)`, `cues (num_cues, dim)`."""
    rng = np.random.default_rng([config.world_seed, 0])
    raw = rng.standard_normal((config.dim, config.num_directions))
    raw -= raw.mean(axis=0, keepdims=True)  # zero mean over the features: a frame's mean carries no role
    basis, _ = np.linalg.qr(raw)  # (dim, directions), orthonormal columns, still zero-mean
    basis = basis.T.astype(np.float32)
    return {
        "markers": basis[:2],
        "classes": basis[2 : 2 + config.num_classes],
        "cues": basis[2 + config.num_classes :],
    }


def _draw_cues(config: FrameBenchmarkConfig, split: str, labels: np.ndarray, rng) -> np.ndarray:
    agreeing = config.cue_of_class(labels)
    others = (agreeing + rng.integers(1, config.num_cues, size=len(labels))) % config.num_cues  # never agreeing
    if split == "decorrelated":
        return rng.integers(0, config.num_cues, size=len(labels))
    if split == "anti_correlated":
        return others
    agree = rng.random(len(labels)) < config.rho
    return np.where(agree, agreeing, others)


def make_split(config: FrameBenchmarkConfig, split: str) -> FrameSplit:
    """The examples of `split` (one of `SPLITS`), balanced over the classes; a pure function of `(config, split)`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    size = {"train": config.num_train, "validation": config.num_validation}.get(split, config.num_test)
    world = world_directions(config)
    rng = np.random.default_rng([config.world_seed, _SPLIT_STREAMS[split]])
    labels = np.arange(size) % config.num_classes
    rng.shuffle(labels)
    cues = _draw_cues(config, split, labels, rng)
    roles = np.zeros((size, config.num_frames), dtype=np.int64)
    for row in range(size):
        positions = rng.permutation(config.num_frames)
        roles[row, positions[: config.num_discriminative]] = 1
        roles[row, positions[config.num_discriminative : config.num_discriminative + config.num_spurious]] = 2
    features = config.noise_std * rng.standard_normal((size, config.num_frames, config.dim)).astype(np.float32)
    discriminative = world["markers"][0] * config.marker_strength + config.class_strength * world["classes"][labels]
    spurious = world["markers"][1] * config.marker_strength + config.cue_strength * world["cues"][cues]
    features += (roles == 1)[..., None] * discriminative[:, None, :]  # (n, frames, dim)
    features += (roles == 2)[..., None] * spurious[:, None, :]
    return FrameSplit(
        features=features.astype(np.float32),
        labels=labels.astype(np.int64),
        cues=cues.astype(np.int64),
        frame_roles=roles,
        cue_agrees=cues == config.cue_of_class(labels),
    )


def role_attention(frame_roles: np.ndarray, role: str) -> np.ndarray:
    """`(n, frames)` the attention spread evenly over the frames of `role` (the oracle uses the discriminative ones,
    the shortcut-only floor the spurious ones)."""
    mask = (frame_roles == FRAME_ROLES.index(role)).astype(np.float32)
    return mask / mask.sum(axis=1, keepdims=True)
