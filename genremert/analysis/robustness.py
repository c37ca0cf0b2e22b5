"""Robustness of a trained model: an untargeted PGD attack on the waveform bounded by a signal-to-noise ratio, and
non-adversarial corruptions (white noise, 3–5 kHz band noise, low-pass filtering), as accuracy / F1 curves.

- `pgd_attack(model, waveforms, labels, snr_db, steps, step_size, restarts)`: L2 projected gradient ascent on the
  cross-entropy; the perturbation δ of each slice is projected onto `‖δ‖₂ ≤ ‖x‖₂ · 10^(−snr/20)` after *every* step
  (the released code of Hoedt et al. computes its clamp and discards it, so its perturbation is never bounded); the
  normalisation of the feature extractor is applied inside the graph. Restarts start from random points of the ball
  and keep, per slice, the perturbation with the highest loss. Returns the perturbed waveforms and the SNR reached.
- `evaluate_under(model, slices, transform)` → frame and song (majority vote) accuracy and weighted F1.
- `robustness_curves(models, slices, snrs, ...)` → JSON-ready curves for every model; `plot_curves` draws them.

Deterministic given `seed`; batched; with a progress bar.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..evaluation.metrics import classification_scores, song_scores


CORRUPTIONS = ("white_noise", "band_noise", "lowpass")


def _normalise(model, waveforms: torch.Tensor) -> torch.Tensor:
    """What the model's feature extractor does to a waveform, differentiably (GenreMERT: per-slice zero mean and unit
    variance, as `Wav2Vec2FeatureExtractor`; CRNN_FGNL: nothing)."""
    if getattr(model.config, "model_type", None) == "genremert":
        mean = waveforms.mean(dim=-1, keepdim=True)
        variance = waveforms.var(dim=-1, keepdim=True, unbiased=False)
        return (waveforms - mean) / torch.sqrt(variance + 1e-7)
    return waveforms


def logits_of(model, waveforms: torch.Tensor) -> torch.Tensor:
    return model(_normalise(model, waveforms)).logits.float()


def snr_db(clean: torch.Tensor, perturbation: torch.Tensor) -> torch.Tensor:
    """Per-slice SNR in dB of `clean + perturbation` against `clean`: 20·log10(‖x‖ / ‖δ‖)."""
    signal = clean.flatten(1).norm(dim=1)
    noise = perturbation.flatten(1).norm(dim=1).clamp_min(1e-12)
    return 20 * torch.log10(signal.clamp_min(1e-12) / noise)


def _project(delta: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return delta * torch.clamp(budget / norms, max=1.0)[:, None]


def pgd_attack(
    model,
    waveforms: torch.Tensor,
    labels: torch.Tensor,
    snr: float,
    steps: int = 10,
    step_size: float = 0.25,
    restarts: int = 1,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Untargeted L2 PGD within an SNR budget (see the module docstring). `step_size` is a fraction of the budget.
    Returns `(adversarial waveforms, SNR reached per slice in dB)`; every slice's SNR is ≥ `snr` (up to rounding)."""
    model.eval()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    budget = waveforms.flatten(1).norm(dim=1) * 10 ** (-snr / 20)  # (batch,)
    best_delta = torch.zeros_like(waveforms)
    best_loss = torch.full((waveforms.shape[0],), -math.inf)
    for restart in range(restarts):
        if restart == 0:
            delta = torch.zeros_like(waveforms)
        else:
            delta = torch.randn(waveforms.shape, generator=generator).to(waveforms)
            delta = _project(delta * (budget / delta.flatten(1).norm(dim=1))[:, None] * 0.5, budget)
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = F.cross_entropy(logits_of(model, waveforms + delta), labels, reduction="sum")
            (gradient,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                direction = gradient / gradient.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None]
                delta = _project(delta + step_size * budget[:, None] * direction, budget)  # projected every step
        with torch.no_grad():
            losses = F.cross_entropy(logits_of(model, waveforms + delta), labels, reduction="none")
            better = losses > best_loss
            best_delta[better], best_loss[better] = delta[better], losses[better]
    return (waveforms + best_delta).detach(), snr_db(waveforms, best_delta)


def corrupt(waveforms: torch.Tensor, kind: str, level: float, sampling_rate: int, seed: int = 0) -> torch.Tensor:
    """A non-adversarial corruption: `"white_noise"` / `"band_noise"` (3–5 kHz) at SNR `level` dB (per slice), or
    `"lowpass"` filtering at cutoff `level` Hz (an FFT mask)."""
    from ..data.synthetic_music import add_band_noise

    rng = np.random.default_rng(seed)
    array = waveforms.detach().cpu().numpy()
    if kind == "white_noise":
        out = []
        for row in array:
            noise = rng.standard_normal(row.shape)
            noise *= (
                np.sqrt(np.mean(row.astype(np.float64) ** 2))
                * 10 ** (-level / 20)
                / (np.sqrt(np.mean(noise**2)) + 1e-12)
            )
            out.append(row + noise)
        result = np.stack(out)
    elif kind == "band_noise":
        result = np.stack([add_band_noise(row, sampling_rate, (3000.0, 5000.0), -level, rng) for row in array])
    elif kind == "lowpass":
        spectrum = np.fft.rfft(array, axis=-1)
        frequencies = np.fft.rfftfreq(array.shape[-1], 1.0 / sampling_rate)
        spectrum[..., frequencies > level] = 0
        result = np.fft.irfft(spectrum, n=array.shape[-1], axis=-1)
    else:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {list(CORRUPTIONS)}.")
    return torch.from_numpy(result.astype(np.float32)).to(waveforms.device)


def _batches(slices, batch_size: int):
    for begin in range(0, len(slices), batch_size):
        rows = [slices[i] for i in range(begin, min(begin + batch_size, len(slices)))]
        yield (
            torch.from_numpy(np.stack([np.asarray(row["input_values"], dtype=np.float32) for row in rows])),
            torch.tensor([int(row["label"]) for row in rows]),
            [row["song_id"] for row in rows],
        )


def evaluate_under(model, slices, transform=None, batch_size: int = 16, progress: bool = False) -> dict:
    """Frame and song accuracy / weighted F1 of `model` on `slices`, each batch passed through `transform(waveforms,
    labels, batch_number)` first (returns waveforms, or `(waveforms, snr)` to report the SNR reached)."""
    from tqdm.auto import tqdm

    model.eval()
    predictions, labels, songs, reached = [], [], [], []
    batches = list(_batches(slices, batch_size))
    for number, (waveforms, batch_labels, song_ids) in enumerate(tqdm(batches, disable=not progress, leave=False)):
        if transform is not None:
            transformed = transform(waveforms, batch_labels, number)
            if isinstance(transformed, tuple):
                waveforms, snr = transformed
                reached.append(snr)
            else:
                waveforms = transformed
        with torch.no_grad():
            predictions.append(logits_of(model, waveforms).softmax(-1).numpy())
        labels.append(batch_labels.numpy())
        songs += song_ids
    probabilities, labels = np.concatenate(predictions), np.concatenate(labels)
    num_labels = model.config.num_labels
    result = {f"frame_{k}": v for k, v in classification_scores(probabilities.argmax(1), labels, num_labels).items()}
    song_index = np.unique(songs, return_inverse=True)[1]
    song = song_scores(probabilities, labels, song_index, num_labels)  # the majority vote of the evaluation
    result.update({f"song_{k}": v for k, v in song.items() if k != "num_songs"})
    if reached:
        snrs = torch.cat(reached)
        result["snr_reached_min"], result["snr_reached_mean"] = float(snrs.min()), float(snrs.mean())
    return result


def robustness_curves(
    models: dict,
    slices,
    snrs=(40.0, 30.0, 20.0, 10.0),
    cutoffs=(4000.0, 2000.0, 1000.0),
    steps: int = 10,
    step_size: float = 0.25,
    restarts: int = 1,
    batch_size: int = 16,
    seed: int = 0,
    corruptions=CORRUPTIONS,
    attack: bool = True,
    progress: bool = True,
) -> dict:
    """`{model name: {"clean": scores, "pgd": {snr: scores}, "white_noise": {...}, "band_noise": {...},
    "lowpass": {cutoff: scores}}}`, every score set from `evaluate_under`."""
    results = {}
    for name, model in models.items():
        rate = model.config.sampling_rate
        curves = {"clean": evaluate_under(model, slices, batch_size=batch_size)}
        if attack:
            curves["pgd"] = {
                str(snr): evaluate_under(
                    model,
                    slices,
                    lambda w, y, n, snr=snr: pgd_attack(model, w, y, snr, steps, step_size, restarts, seed + n),
                    batch_size,
                    progress,
                )
                for snr in snrs
            }
        for kind in corruptions:
            levels = cutoffs if kind == "lowpass" else snrs
            curves[kind] = {
                str(level): evaluate_under(
                    model,
                    slices,
                    lambda w, y, n, kind=kind, level=level: corrupt(w, kind, level, rate, seed + n),
                    batch_size,
                )
                for level in levels
            }
        results[name] = curves
    return results


def plot_curves(results: dict, path, metric: str = "frame_accuracy") -> Path:
    """Accuracy (or `metric`) against the SNR budget, one line per model and perturbation, several models on one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("pgd", "white_noise", "band_noise") if any(k in r for r in results.values())]
    figure, axes = plt.subplots(1, max(1, len(kinds)), figsize=(5 * max(1, len(kinds)), 4), squeeze=False)
    for axis, kind in zip(axes[0], kinds):
        for name, curves in results.items():
            if kind not in curves:
                continue
            levels = sorted(curves[kind], key=float, reverse=True)
            axis.plot(
                [float(level) for level in levels], [curves[kind][level][metric] for level in levels], "o-", label=name
            )
        axis.invert_xaxis()
        axis.set_xlabel("SNR (dB)")
        axis.set_ylabel(metric)
        axis.set_title(kind)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def main(argv=None) -> int:
    """`robustness.py --model_dir A [--model_dir B ...] --output_dir OUT`: curves of every model on the test slices of
    the dataset it was trained on (settings from its run_args.json), JSON + plot."""
    import argparse
    import sys

    from .cli import _load_slices, fill_from_run_arguments, load_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", action="append", required=True, help="A trained model folder (repeatable).")
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Run Python code shipped in a --model_dir (only needed for model types this library does not register).",
    )
    parser.add_argument("--name", action="append", default=None, help="A name per --model_dir for the plot.")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--snr_db", type=float, nargs="+", default=[40.0, 30.0, 20.0, 10.0])
    parser.add_argument("--cutoff_hz", type=float, nargs="+", default=[4000.0, 2000.0, 1000.0])
    parser.add_argument("--steps", type=int, default=10, help="PGD steps")
    parser.add_argument("--step_size", type=float, default=0.25, help="PGD step, as a fraction of the budget")
    parser.add_argument("--restarts", type=int, default=1, help="PGD restarts (the first from δ = 0)")
    parser.add_argument("--max_slices", type=int, default=0, help="use at most this many test slices (0 = all)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = args.name or [Path(folder).name for folder in args.model_dir]
    if len(names) != len(args.model_dir):
        parser.error("give one --name per --model_dir.")
    models, slices = {}, None
    for name, folder in zip(names, args.model_dir):
        loader = argparse.Namespace(
            model_dir=folder, dataset=None, data_dir=None, split=None, synthetic_options=None, bias_class=None,
            eval_split="test",
        )  # fmt: skip
        try:
            fill_from_run_arguments(loader)
            models[name] = load_model(folder, trust_remote_code=args.trust_remote_code)
            if slices is None:
                slices = _load_slices(loader, models[name])[0]
        except (ValueError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    if args.max_slices:
        slices = slices.select(range(min(args.max_slices, len(slices))))
    results = robustness_curves(
        models,
        slices,
        args.snr_db,
        args.cutoff_hz,
        args.steps,
        args.step_size,
        args.restarts,
        args.batch_size,
        args.seed,
    )
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "robustness.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(plot_curves(results, output / "robustness.png"))
    return 0
