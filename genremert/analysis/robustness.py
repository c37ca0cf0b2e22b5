"""Robustness of a trained model: an untargeted PGD attack on the waveform bounded by a signal-to-noise ratio, and
non-adversarial corruptions (white noise, 3–5 kHz band noise, low-pass filtering), as accuracy / F1 curves.

- `pgd_attack(model, waveforms, labels, snr_db, steps, step_size, restarts)`: L2 projected gradient ascent on the
  cross-entropy (a multi-label tagger, `config.problem_type == "multi_label_classification"`: the binary
  cross-entropy summed over the tags, against multi-hot `labels`); the perturbation δ of each slice is projected onto
  `‖δ‖₂ ≤ ‖x‖₂ · 10^(−snr/20)` after *every* step (the released code of Hoedt et al. computes its clamp and discards
  it, so its perturbation is never bounded); the normalisation of the feature extractor is applied inside the graph.
  Restarts start from random points of the ball and keep, per slice, the perturbation with the highest loss. Returns
  the perturbed waveforms and the SNR reached.
- `evaluate_under(model, slices, transform)` → frame and song (majority vote) accuracy and weighted F1; for a tagger,
  the tagging metrics instead: frame and song (mean of the slices) macro ROC-AUC and PR-AUC.
- `robustness_curves(models, slices, snrs, ...)` → JSON-ready curves for every model; `plot_curves` draws them.
  One line per condition (a model's clean score, one PGD budget, one corruption level) says what was done, on how
  many slices, its score and the time left; `on_condition` receives the results after each, so the command line
  rewrites robustness.json as it goes and an interrupted run keeps every condition that finished.

Deterministic given `seed`; batched.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..evaluation.metrics import classification_scores, song_scores


CORRUPTIONS = ("white_noise", "band_noise", "lowpass")
PROBLEM_TYPES = (None, "single_label_classification", "multi_label_classification")  # what this module scores
TAGGING_SCORES = ("frame_roc_auc", "frame_pr_auc", "song_roc_auc", "song_pr_auc")


def is_multi_label(model) -> bool:
    """Whether `model` is a multi-label tagger (independent sigmoid outputs, multi-hot targets)."""
    return getattr(model.config, "problem_type", None) == "multi_label_classification"


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


def _losses(model, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The per-slice loss the attack ascends: cross-entropy, or for a tagger the BCE summed over its tags."""
    if is_multi_label(model):
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none").sum(-1)
    return F.cross_entropy(logits, labels, reduction="none")


def _check_attack(model, waveforms: torch.Tensor, labels: torch.Tensor, snr, steps, step_size, restarts) -> None:
    if not math.isfinite(snr):
        raise ValueError(f"snr must be a finite number of dB, got {snr}.")
    if not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a finite fraction of the budget > 0, got {step_size}.")
    for name, value in (("steps", steps), ("restarts", restarts)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value}.")
    expected = (waveforms.shape[0], model.config.num_labels) if is_multi_label(model) else (waveforms.shape[0],)
    if tuple(labels.shape) != expected:
        kind = "multi-hot tag targets" if is_multi_label(model) else "class ids"
        raise ValueError(f"labels must be {kind} of shape {expected} for this model, got shape {tuple(labels.shape)}.")


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
    Returns `(adversarial waveforms, SNR reached per slice in dB)`; every slice's SNR is ≥ `snr` (up to rounding).
    `labels`: class ids `(batch,)`, or for a multi-label tagger float multi-hot targets `(batch, num_labels)`."""
    _check_attack(model, waveforms, labels, snr, steps, step_size, restarts)
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
            loss = _losses(model, logits_of(model, waveforms + delta), labels).sum()
            (gradient,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                direction = gradient / gradient.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None]
                delta = _project(delta + step_size * budget[:, None] * direction, budget)  # projected every step
        with torch.no_grad():
            losses = _losses(model, logits_of(model, waveforms + delta), labels)
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


def _targets(rows: list, num_tags: int | None) -> torch.Tensor:
    """Class ids `(batch,)`; with `num_tags`, each row's `label` is the list of its tag ids and the targets are float
    multi-hot `(batch, num_tags)` (as `SliceCollator`)."""
    if num_tags is None:
        return torch.tensor([int(row["label"]) for row in rows])
    targets = torch.zeros(len(rows), num_tags)
    for i, row in enumerate(rows):
        tags = row["label"]
        if not isinstance(tags, (list, tuple, np.ndarray)):
            raise ValueError(
                f"slice of {row.get('song_id')!r}: a multi-label `label` must be the list of its tag ids, got "
                f"{type(tags).__name__} {tags!r}."
            )
        for tag in tags:
            if not 0 <= int(tag) < num_tags:
                raise ValueError(f"slice of {row.get('song_id')!r}: tag id {tag} is not in [0, {num_tags}).")
            targets[i, int(tag)] = 1.0
    return targets


def _batches(slices, batch_size: int, num_tags: int | None = None):
    for begin in range(0, len(slices), batch_size):
        rows = [slices[i] for i in range(begin, min(begin + batch_size, len(slices)))]
        yield (
            torch.from_numpy(np.stack([np.asarray(row["input_values"], dtype=np.float32) for row in rows])),
            _targets(rows, num_tags),
            [row["song_id"] for row in rows],
        )


def evaluate_under(model, slices, transform=None, batch_size: int = 16, progress: bool = False) -> dict:
    """Frame and song accuracy / weighted F1 of `model` on `slices` (a multi-label tagger: `TAGGING_SCORES`, macro
    over the tags that have a positive and a negative slice, and the number of tags left out at each level), each batch
    passed through `transform(waveforms, labels, batch_number)` first (returns waveforms, or `(waveforms, snr)` to
    report the SNR reached)."""
    from tqdm.auto import tqdm

    model.eval()
    multi_label = is_multi_label(model)
    num_labels = model.config.num_labels
    predictions, labels, songs, reached = [], [], [], []
    batches = list(_batches(slices, batch_size, num_labels if multi_label else None))
    for number, (waveforms, batch_labels, song_ids) in enumerate(tqdm(batches, disable=not progress, leave=False)):
        if transform is not None:
            transformed = transform(waveforms, batch_labels, number)
            if isinstance(transformed, tuple):
                waveforms, snr = transformed
                reached.append(snr)
            else:
                waveforms = transformed
        with torch.no_grad():
            logits = logits_of(model, waveforms)
            predictions.append((logits.sigmoid() if multi_label else logits.softmax(-1)).numpy())
        labels.append(batch_labels.numpy())
        songs += song_ids
    probabilities, labels = np.concatenate(predictions), np.concatenate(labels)
    song_index = np.unique(songs, return_inverse=True)[1]
    if multi_label:  # the evaluation's tagging metrics (songs: the mean of their slices)
        from ..evaluation.tagging_metrics import tagging_metrics

        id2label = getattr(model.config, "id2label", None) or {}
        tags = [str(id2label.get(index, id2label.get(str(index), index))) for index in range(num_labels)]
        scores = tagging_metrics(probabilities, labels, song_index, tags)
        result = {key: scores[key] for key in TAGGING_SCORES}
        result["frame_num_excluded_tags"] = len(scores["frame_excluded_tags"])
        result["song_num_excluded_tags"] = len(scores["song_excluded_tags"])
    else:
        predicted = probabilities.argmax(1)
        result = {f"frame_{k}": v for k, v in classification_scores(predicted, labels, num_labels).items()}
        song = song_scores(probabilities, labels, song_index, num_labels)  # the majority vote of the evaluation
        result.update({f"song_{k}": v for k, v in song.items() if k != "num_songs"})
    if reached:
        snrs = torch.cat(reached)
        result["snr_reached_min"], result["snr_reached_mean"] = float(snrs.min()), float(snrs.mean())
    return result


def _conditions(models: dict, snrs, cutoffs, corruptions, attack: bool) -> list:
    """Every `(model name, curve, level)` to evaluate, in the order of evaluation: a model's clean score (curve
    `"clean"`, level None), its PGD budgets, then each corruption's levels; then the next model."""
    conditions = []
    for name in models:
        conditions.append((name, "clean", None))
        if attack:
            conditions += [(name, "pgd", snr) for snr in snrs]
        for kind in corruptions:
            conditions += [(name, kind, level) for level in (cutoffs if kind == "lowpass" else snrs)]
    return conditions


def _cost(curve: str, steps: int, restarts: int) -> int:
    """Forward passes a condition costs per batch (a backward pass counted as two): the weights of the time left."""
    return restarts * (3 * steps + 1) + 1 if curve == "pgd" else 1


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _describe_condition(curve: str, level) -> str:
    if curve == "clean":
        return "clean"
    if curve == "lowpass":
        return f"lowpass at {float(level):g} Hz"
    return f"{curve.replace('_', ' ')} at {float(level):g} dB SNR"


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
    on_condition=None,
) -> dict:
    """`{model name: {"clean": scores, "pgd": {snr: scores}, "white_noise": {...}, "band_noise": {...},
    "lowpass": {cutoff: scores}}}`, every score set from `evaluate_under`.

    `progress`: one line per condition on stderr, `robustness [k/n] <model>: <condition>, <slices> in <batches>:
    <score> (<its time>; about <time> left)`, the time left weighted by each remaining condition's passes (a PGD
    budget costs `restarts · (3 · steps + 1) + 1` passes per batch, a corruption one). `on_condition(results)`: called
    after every condition with the results so far (the finished conditions only), so a caller can save them as the
    run goes."""
    conditions = _conditions(models, snrs, cutoffs, corruptions, attack)
    costs = [_cost(curve, steps, restarts) for _, curve, _ in conditions]
    num_batches = math.ceil(len(slices) / batch_size)
    results = {}  # a model appears with its first finished condition
    begin = time.perf_counter()
    for number, (name, curve, level) in enumerate(conditions):
        model = models[name]
        started = time.perf_counter()
        if curve == "clean":
            transform = None
        elif curve == "pgd":  # the batch number `n` seeds the restarts: deterministic given `seed`

            def transform(w, y, n, model=model, snr=level):
                return pgd_attack(model, w, y, snr, steps, step_size, restarts, seed + n)

        else:

            def transform(w, y, n, kind=curve, level=level, rate=model.config.sampling_rate):
                return corrupt(w, kind, level, rate, seed + n)

        scores = evaluate_under(model, slices, transform, batch_size, progress and curve == "pgd")
        if curve == "clean":
            results.setdefault(name, {})["clean"] = scores
        else:
            results.setdefault(name, {}).setdefault(curve, {})[str(level)] = scores
        if progress:
            elapsed = time.perf_counter() - begin
            left = elapsed / sum(costs[: number + 1]) * sum(costs[number + 1 :])
            metric = "frame_roc_auc" if "frame_roc_auc" in scores else "frame_accuracy"
            print(
                f"robustness [{number + 1}/{len(conditions)}] {name}: {_describe_condition(curve, level)}, "
                f"{len(slices)} slices in {num_batches} batch{'es' if num_batches > 1 else ''}: {metric} {scores[metric]:.3f} "
                f"({_duration(time.perf_counter() - started)}; "
                + ("done" if number + 1 == len(conditions) else f"about {_duration(left)} left")
                + ")",
                file=sys.stderr,
                flush=True,
            )
        if on_condition is not None:
            on_condition(results)
    return results


def write_json_atomically(path, data) -> Path:
    """`data` as JSON at `path`, through a temporary file in the same folder renamed over it: a reader (or a run
    interrupted while writing) sees the previous file or the new one, never half of one."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def _default_metric(results: dict) -> str:
    """`frame_accuracy`, or `frame_roc_auc` when every score set is a tagger's."""
    scores = []
    for curves in results.values():
        for name, curve in curves.items():
            scores += [curve] if name == "clean" else list(curve.values())
    return "frame_roc_auc" if scores and all("frame_roc_auc" in s for s in scores) else "frame_accuracy"


def plot_curves(results: dict, path, metric: str | None = None) -> Path:
    """`metric` (default: frame accuracy, or frame ROC-AUC for taggers) against the SNR budget, one line per model and
    perturbation, several models on one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = metric or _default_metric(results)
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


DATA_SETTINGS = ("dataset", "data_dir", "split", "synthetic_options")  # what picks the test slices of a model


def _check_flags(parser, args) -> list:
    """Every flag that needs no model or data, before anything is loaded; returns the model names."""
    for flag, values, positive, meaning in (
        ("--snr_db", args.snr_db, False, "an SNR budget in dB"),
        ("--cutoff_hz", args.cutoff_hz, True, "a low-pass cutoff in Hz"),
        ("--step_size", [args.step_size], True, "the PGD step as a fraction of the budget"),
    ):
        for value in values:
            if not math.isfinite(value) or (positive and value <= 0):
                parser.error(f"{flag} {value:g}: expected a finite number{' > 0' if positive else ''} ({meaning}).")
    for flag, value, minimum in (
        ("--steps", args.steps, 1),
        ("--restarts", args.restarts, 1),
        ("--batch_size", args.batch_size, 1),
        ("--max_slices", args.max_slices, 0),
        ("--seed", args.seed, 0),
    ):
        if value < minimum:
            parser.error(f"{flag} {value}: expected an integer >= {minimum}.")
    names = args.name or [Path(folder).name for folder in args.model_dir]
    if len(names) != len(args.model_dir):
        parser.error(f"give one --name per --model_dir: got {len(names)} --name for {len(args.model_dir)} --model_dir.")
    for name in names:
        if names.count(name) > 1:
            folders = [folder for other, folder in zip(names, args.model_dir) if other == name]
            parser.error(f"the --model_dir {', '.join(folders)} are all named {name!r}: give each its own --name.")
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        parser.error(f"--output_dir {args.output_dir} is a file: expected a folder for robustness.json and .png.")
    return names


def _model_folder_problem(folder) -> str | None:
    """Why `folder` is not a training output folder robustness.py can use, or None."""
    path = Path(folder)
    if not path.exists():
        return f"--model_dir {folder} does not exist."
    if not path.is_dir():
        return f"--model_dir {folder} is not a folder: expected a trained model folder."
    missing = [name for name in ("config.json", "run_args.json") if not (path / name).is_file()]
    if missing:
        return (
            f"--model_dir {folder} is not a training output folder: it has no {' and no '.join(missing)} "
            "(robustness.py evaluates a model on the test split of the dataset it was trained on, read from the "
            "run_args.json that run_classification.py writes)."
        )
    return None


def _describe(model) -> str:
    kind = "tags (multi-label)" if is_multi_label(model) else "classes"
    return f"{model.config.num_labels} {kind}"


def main(argv=None) -> int:
    """`robustness.py --model_dir A [--model_dir B ...] --output_dir OUT`: curves of every model on the test slices of
    the dataset the first was trained on (settings from its run_args.json), JSON + plot. Every flag and model folder
    is checked before any data is loaded; the models must predict the same classes (or tags)."""
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
    parser.add_argument(
        "--snr_db",
        type=float,
        nargs="+",
        default=[40.0, 30.0, 20.0, 10.0],
        help="SNR budgets of the attack and levels of the noises, in dB (finite numbers; negative ones allowed)",
    )
    parser.add_argument(
        "--cutoff_hz",
        type=float,
        nargs="+",
        default=[4000.0, 2000.0, 1000.0],
        help="low-pass cutoffs in Hz (> 0 and below the models' Nyquist frequency)",
    )
    parser.add_argument("--steps", type=int, default=10, help="PGD steps (>= 1)")
    parser.add_argument("--step_size", type=float, default=0.25, help="PGD step, as a fraction of the budget (> 0)")
    parser.add_argument("--restarts", type=int, default=1, help="PGD restarts (>= 1; the first from δ = 0)")
    parser.add_argument("--max_slices", type=int, default=0, help="use at most this many test slices (0 = all)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = _check_flags(parser, args)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 1

    models, loaders = {}, {}
    for name, folder in zip(names, args.model_dir):
        problem = _model_folder_problem(folder)
        if problem:
            return fail(problem)
        loader = argparse.Namespace(
            model_dir=folder, dataset=None, data_dir=None, split=None, synthetic_options=None, bias_class=None,
            eval_split="test",
        )  # fmt: skip
        try:
            fill_from_run_arguments(loader)
            model = load_model(folder, trust_remote_code=args.trust_remote_code)
        except (ValueError, FileNotFoundError, TypeError) as error:
            return fail(str(error))
        problem_type = getattr(model.config, "problem_type", None)
        if problem_type not in PROBLEM_TYPES:
            return fail(
                f"--model_dir {folder} has config.problem_type {problem_type!r}: robustness.py scores classifiers "
                "and multi-label taggers only."
            )
        nyquist = model.config.sampling_rate / 2
        if max(args.cutoff_hz) >= nyquist:
            return fail(
                f"--cutoff_hz {max(args.cutoff_hz):g} is not below {nyquist:g} Hz, the Nyquist frequency of the model "
                f"in --model_dir {folder}: that low-pass filter would change nothing."
            )
        models[name], loaders[name] = model, loader
    first, first_folder = names[0], args.model_dir[0]
    for name, folder in zip(names[1:], args.model_dir[1:]):
        if _describe(models[name]) != _describe(models[first]):
            return fail(
                f"--model_dir {folder} predicts {_describe(models[name])} and --model_dir {first_folder} "
                f"{_describe(models[first])}: every model is scored on the test slices of the first one's dataset."
            )
        settings = {key: getattr(loaders[name], key) for key in DATA_SETTINGS}
        first_settings = {key: getattr(loaders[first], key) for key in DATA_SETTINGS}
        if settings != first_settings:
            print(
                f"warning: --model_dir {folder} was trained on {settings}, not on {first_settings} as --model_dir "
                f"{first_folder}; every model is scored on the test slices of the latter.",
                file=sys.stderr,
            )
    try:
        slices = _load_slices(loaders[first], models[first])[0]
    except (ValueError, FileNotFoundError) as error:
        return fail(str(error))
    if args.max_slices:
        slices = slices.select(range(min(args.max_slices, len(slices))))
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    json_path = output / "robustness.json"
    conditions = len(_conditions(models, args.snr_db, args.cutoff_hz, CORRUPTIONS, True))
    print(
        f"robustness: {len(models)} model(s) × {conditions // len(models)} conditions on {len(slices)} test slices; "
        f"{json_path} is rewritten after each condition (an interrupted run keeps what finished)",
        file=sys.stderr,
        flush=True,
    )
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
        on_condition=lambda partial: write_json_atomically(json_path, partial),
    )
    write_json_atomically(json_path, results)
    print(plot_curves(results, output / "robustness.png"))
    return 0
