"""The shortcut test of paper Fig. 1 on a trained model: band noise on every test slice, and how many slices of the
other classes it pulls to the biased class; and the accuracy of the main vs the counterfactual branch (Table 4)."""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.synthetic_music import add_band_noise as _add_band_noise
from .attention_maps import (
    DEFAULT_BIAS_BAND_HZ,
    DEFAULT_NOISE_DB,
    _as_waveform,
    _batches,
    _has_counterfactual_branch,
    _label_name,
    _model_kind,
    _new_figure,
    _predict,
    _save_figure,
    _slice_waveform,
)


def add_band_noise(
    waveform,
    sampling_rate: int,
    band_hz=DEFAULT_BIAS_BAND_HZ,
    noise_db: float = DEFAULT_NOISE_DB,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """`waveform` plus white noise band-limited to `band_hz`, its RMS `noise_db` dB relative to the waveform's RMS:
    the synthetic benchmark's noise (`synthetic_music.add_band_noise`), on any recording."""
    rng = rng if rng is not None else np.random.default_rng(0)
    return _add_band_noise(_as_waveform(waveform), sampling_rate, band_hz, noise_db, rng)


@dataclass
class BiasProbeResult:
    """Numbers of the bias probe (slice level), named as in demo.py / docs/training.md.

    - `shortcut_gap` = clean − noisy weighted F1: how much the model's answers depend on the band noise (≈ 0 for a
      model that ignores it).
    - `*_biased_rate`: share of slices of the *other* classes predicted as the biased class; `biased_rate_gap` =
      noisy − clean rate, large when the model learned "noise ⇒ biased class".
    - `accuracy_drop` = clean − noisy accuracy.
    """

    bias_class: int
    bias_class_name: str
    band_hz: tuple
    noise_db: float | None
    num_clean: int
    num_noisy: int
    clean_accuracy: float
    clean_f1: float
    noisy_accuracy: float
    noisy_f1: float
    clean_biased_rate: float
    noisy_biased_rate: float
    shortcut_gap: float
    biased_rate_gap: float
    accuracy_drop: float

    def to_dict(self) -> dict:
        result = asdict(self)
        result["band_hz"] = list(self.band_hz)
        return result


def _evaluate(model, slices, batch_size, max_slices, transform=None):
    predictions, labels = [], []
    offset = 0
    for batch in _batches(slices, batch_size, max_slices):
        waveforms = [_slice_waveform(row) for row in batch]
        if transform is not None:
            waveforms = [transform(offset + i, waveform) for i, waveform in enumerate(waveforms)]
        offset += len(batch)
        predictions.append(_predict(model, waveforms).logits.argmax(-1).cpu().numpy())
        labels.append(np.asarray([int(row["label"]) for row in batch]))
    return np.concatenate(predictions), np.concatenate(labels)


def _scores(predictions, labels, bias_class):
    from sklearn.metrics import f1_score

    others = labels != bias_class
    biased_rate = float(np.mean(predictions[others] == bias_class)) if others.any() else float("nan")
    accuracy = float(np.mean(predictions == labels))
    f1 = float(f1_score(labels, predictions, average="weighted", zero_division=0))
    return accuracy, f1, biased_rate


def bias_probe(
    model,
    slices,
    bias_class: int,
    band_hz=DEFAULT_BIAS_BAND_HZ,
    noise_db: float = DEFAULT_NOISE_DB,
    noisy_slices=None,
    batch_size: int = 16,
    max_slices: int | None = None,
    seed: int = 0,
) -> BiasProbeResult:
    """The shortcut test of paper Fig. 1 on any dataset.

    Classifies `slices` (rows with `input_values`, `label`) clean, then with band noise: either the slices given as
    `noisy_slices` (e.g. the synthetic benchmark's `test_noisy` split) or, by default, `slices` with white noise in
    `band_hz` at `noise_db` dB relative to each slice's RMS (seeded per slice). A model trained where only
    `bias_class` carried that noise, and which learned the shortcut, predicts `bias_class` for the noisy slices of
    the other classes: see `BiasProbeResult` (`shortcut_gap`, `biased_rate_gap`).
    """
    _model_kind(model)
    num_labels = model.config.num_labels
    if not 0 <= int(bias_class) < num_labels:
        raise ValueError(f"`bias_class` must be in [0, {num_labels - 1}], got {bias_class}.")
    bias_class = int(bias_class)
    clean_predictions, clean_labels = _evaluate(model, slices, batch_size, max_slices)
    if noisy_slices is not None:
        noisy_predictions, noisy_labels = _evaluate(model, noisy_slices, batch_size, max_slices)
        used_noise_db = None
    else:
        sampling_rate = model.config.sampling_rate

        def with_noise(index, waveform):
            return add_band_noise(waveform, sampling_rate, band_hz, noise_db, np.random.default_rng([seed, index]))

        noisy_predictions, noisy_labels = _evaluate(model, slices, batch_size, max_slices, transform=with_noise)
        used_noise_db = float(noise_db)
    clean_accuracy, clean_f1, clean_rate = _scores(clean_predictions, clean_labels, bias_class)
    noisy_accuracy, noisy_f1, noisy_rate = _scores(noisy_predictions, noisy_labels, bias_class)
    return BiasProbeResult(
        bias_class=bias_class,
        bias_class_name=_label_name(model, bias_class),
        band_hz=(float(band_hz[0]), float(band_hz[1])),
        noise_db=used_noise_db,
        num_clean=len(clean_labels),
        num_noisy=len(noisy_labels),
        clean_accuracy=clean_accuracy,
        clean_f1=clean_f1,
        noisy_accuracy=noisy_accuracy,
        noisy_f1=noisy_f1,
        clean_biased_rate=clean_rate,
        noisy_biased_rate=noisy_rate,
        shortcut_gap=clean_f1 - noisy_f1,
        biased_rate_gap=noisy_rate - clean_rate,
        accuracy_drop=clean_accuracy - noisy_accuracy,
    )


def plot_bias_probe(result: BiasProbeResult, path) -> Path:
    """Bars of accuracy, weighted F1 and the biased-class rate, clean vs band noise, with the shortcut gap."""
    figure, axis = _new_figure()
    names = ["accuracy", "F1 (weighted)", f"other classes → {result.bias_class_name}"]
    clean = [result.clean_accuracy, result.clean_f1, result.clean_biased_rate]
    noisy = [result.noisy_accuracy, result.noisy_f1, result.noisy_biased_rate]
    positions = np.arange(len(names))
    for offset, values, colour, label in ((-0.2, clean, "tab:blue", "clean"), (0.2, noisy, "tab:orange", "band noise")):
        bars = axis.bar(positions + offset, values, 0.4, color=colour, label=label)
        for bar, value in zip(bars, values):
            axis.text(
                bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, f"{value:.2f}", ha="center", va="bottom"
            )
    axis.set_xticks(positions)
    axis.set_xticklabels(names)
    axis.set_ylim(0, 1.1)
    axis.set_ylabel("rate")
    band = f"{result.band_hz[0]:g}–{result.band_hz[1]:g} Hz"
    axis.set_title(
        f"Bias probe ({band} noise, biased class {result.bias_class_name})\nshortcut gap (clean − noisy F1) "
        f"{result.shortcut_gap:+.2f}; other classes → {result.bias_class_name}: {result.clean_biased_rate:.2f} → "
        f"{result.noisy_biased_rate:.2f}"
    )
    axis.legend(loc="upper left")
    figure.tight_layout()
    return _save_figure(figure, path)


def branch_accuracy(model, slices, batch_size: int = 16, max_slices: int | None = None, seed: int = 0) -> dict:
    """Accuracy of the main and the counterfactual branch on `slices` (paper Table 4), computed in
    eval mode (`return_counterfactual=True`). A well-trained LCA model's counterfactual branch scores below its main branch."""
    _model_kind(model)
    if not _has_counterfactual_branch(model):
        raise ValueError("The model has no counterfactual branch (config.counterfactual is 'none' or it was removed).")
    main_correct = counterfactual_correct = total = 0
    for batch in _batches(slices, batch_size, max_slices):
        outputs = _predict(model, [_slice_waveform(row) for row in batch], counterfactual=True, seed=seed)
        labels = torch.as_tensor([int(row["label"]) for row in batch], device=outputs.logits.device)
        main_correct += int((outputs.logits.argmax(-1) == labels).sum())
        counterfactual_correct += int((outputs.counterfactual_logits.argmax(-1) == labels).sum())
        total += len(batch)
    return {
        "main_accuracy": main_correct / total,
        "counterfactual_accuracy": counterfactual_correct / total,
        "num_slices": total,
    }


# ----------------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------------
