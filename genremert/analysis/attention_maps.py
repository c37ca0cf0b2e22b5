"""Interpretability of the genremert models: what they attend to, and whether they use a shortcut.

Importable functions (each plotting function writes one PNG of `FIGURE_SIZE` inches at `FIGURE_DPI` and returns its
path; every waveform argument is one raw mono recording `(samples,)` at `model.config.sampling_rate`, normalised here
by the model's own feature extractor):

- `plot_time_attention(model, waveform, path)`: GenreMERT's main vs counterfactual time attention.
- `plot_roll_attention(model, waveform, path)`: CRNN_FGNL's MoSE roll weights (main vs counterfactual) and the
  roll-weighted non-local response of the FGNL block over the log-mel spectrogram.
- `grad_cam(model, waveform)` / `plot_grad_cam(model, waveform, path)`: where in CRNN_FGNL's log-mel input the
  evidence for a class lies (paper Fig. 1 b/c): integrated gradients on the log-mel by default, classic Grad-CAM on a
  conv block with `method="grad_cam"` (not faithful for this architecture; see docs/interpretability.md).
- `collect_representations(model, slices)` + `plot_tsne(representations, labels, label_names, path)`: t-SNE of the
  features the classifier reads, coloured by class (paper Fig. 1 d/e, Fig. 4).
- `bias_probe(model, slices, bias_class)` + `plot_bias_probe(result, path)`: the shortcut test of paper Fig. 1: band
  noise (3–5 kHz by default) added to every test slice; a model that learned "noise ⇒ biased class" predicts the
  biased class for the noisy slices of the other classes. The *shortcut gap* is clean − noisy F1 (as in demo.py);
  the biased-class rate of the other classes' slices, clean and noisy, shows the shortcut itself.
- `branch_accuracy(model, slices)`: accuracy of the main vs the counterfactual branch (paper Table 4).
- The self-attention tagger's attention heat maps: `genremert.interpret_tagger.plot_tag_attention`.

Every model pass runs in eval mode (dropout off, batch-norm running statistics); the counterfactual branch, which
by default runs only in train mode, is asked for with `forward(..., return_counterfactual=True)`, and the RNG is
seeded (the CAL ablation draws random attention), so every figure is reproducible.

CLI (writes every plot that applies to the model, plus `interpretation.json` with the numbers):

```bash
python interpret.py --model_dir outputs/crnn_fgnl_lca --dataset synthetic --bias_class 0 --output_dir figures/
python interpret.py --model_dir outputs/genremert_lca --dataset gtzan --data_dir data/gtzan --bias_class 3 \
    --output_dir figures/
```
"""

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


FIGURE_SIZE = (10.0, 6.0)  # inches; every figure of this module has this size ...
FIGURE_DPI = 100  # ... and this resolution: 1000 × 600 pixels
DEFAULT_BIAS_BAND_HZ = (3000.0, 5000.0)  # paper Fig. 1: white noise in 3–5 kHz
DEFAULT_NOISE_DB = -15.0  # noise RMS relative to the slice's RMS (the synthetic benchmark's default)
MODEL_NAMES = {
    "genremert": "GenreMERTForAudioClassification",
    "crnn_fgnl": "CRNNFGNLForAudioClassification",
    "self_attention_tagger": "SelfAttentionTaggerForAudioClassification",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    plt = _pyplot()
    figure, axes = plt.subplots(nrows, ncols, figsize=FIGURE_SIZE, dpi=FIGURE_DPI, **kwargs)
    return figure, axes


def _save_figure(figure, path) -> Path:
    """Write `figure` as a PNG of exactly `FIGURE_SIZE × FIGURE_DPI` pixels (no tight bounding box)."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=FIGURE_DPI, format="png")
    plt.close(figure)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Inputs and model modes
# ----------------------------------------------------------------------------------------------------------------------


def _model_kind(model) -> str:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in MODEL_NAMES:
        raise TypeError(
            f"Expected one of {', '.join(MODEL_NAMES.values())}, got {type(model).__name__} (config.model_type "
            f"{model_type!r})."
        )
    return model_type


def _require_kind(model, kind: str, function: str) -> None:
    actual = _model_kind(model)
    if actual != kind:
        raise TypeError(f"`{function}` needs a {MODEL_NAMES[kind]}, got a {MODEL_NAMES[actual]}.")


def _as_waveform(waveform, what: str = "waveform") -> np.ndarray:
    """One mono recording as float32 numpy `(samples,)`; a `(1, samples)` batch is accepted."""
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().numpy()
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 2 and waveform.shape[0] == 1:
        waveform = waveform[0]
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"`{what}` must be one mono recording of shape (samples,), got shape {waveform.shape}.")
    return waveform


def _feature_extractor(model):
    from modeling_lca_genremert import build_feature_extractor

    return build_feature_extractor(model.config)


def model_inputs(model, waveforms: Sequence[np.ndarray]) -> dict:
    """The model's inputs for raw mono recordings: its own feature extractor (normalisation for GenreMERT, none for
    CRNN_FGNL), padded to the longest with an attention mask when lengths differ."""
    waveforms = [_as_waveform(waveform, "waveforms[i]") for waveform in waveforms]
    features = _feature_extractor(model)(
        waveforms,
        sampling_rate=model.config.sampling_rate,
        return_tensors="pt",
        padding=True,
        return_attention_mask=True,
    )
    inputs = {"input_values": features["input_values"].float()}
    if len({len(waveform) for waveform in waveforms}) > 1:
        inputs["attention_mask"] = features["attention_mask"]
    device = next(model.parameters()).device
    return {name: tensor.to(device) for name, tensor in inputs.items()}


@contextlib.contextmanager
def evaluation(model, seed: int = 0):
    """Eval mode (restored afterwards), no gradients, and a seeded RNG (the CAL ablation's counterfactual attention is
    random) whose state is restored afterwards."""
    was_training = model.training
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        model.eval()
        try:
            yield model
        finally:
            model.train(was_training)


def _has_counterfactual_branch(model) -> bool:
    return getattr(model, "counterfactual_branch", None) is not None


def attention_maps(model, waveform, seed: int = 0) -> dict:
    """The main attention and, when the model has a counterfactual branch, the counterfactual one, for one recording.

    Returns numpy arrays: `attention` and `counterfactual_attention` (or None) — GenreMERT `(frames,)`, CRNN_FGNL
    `(num_rolls,)` — and `logits` `(num_labels,)` of the main branch.
    """
    _model_kind(model)
    outputs = _predict(model, [waveform], counterfactual=_has_counterfactual_branch(model), seed=seed)
    counterfactual = outputs.counterfactual_attention
    return {
        "attention": outputs.attention[0].float().cpu().numpy(),
        "counterfactual_attention": None if counterfactual is None else counterfactual[0].float().cpu().numpy(),
        "logits": outputs.logits[0].float().cpu().numpy(),
    }


def _label_name(model, index: int) -> str:
    id2label = getattr(model.config, "id2label", None) or {}
    return str(id2label.get(index, id2label.get(str(index), index)))


# ----------------------------------------------------------------------------------------------------------------------
# GenreMERT: time attention
# ----------------------------------------------------------------------------------------------------------------------


def plot_time_attention(model, waveform, path, seed: int = 0, title: str | None = None) -> Path:
    """GenreMERT: the waveform, and the main vs counterfactual time attention over it (weights per backbone frame,
    drawn against time in seconds). Models without a counterfactual branch show the main attention only."""
    _require_kind(model, "genremert", "plot_time_attention")
    waveform = _as_waveform(waveform)
    maps = attention_maps(model, waveform, seed=seed)
    sampling_rate = model.config.sampling_rate
    duration = len(waveform) / sampling_rate
    frames = maps["attention"].shape[0]
    frame_times = (np.arange(frames) + 0.5) * duration / frames  # centre of each backbone frame, seconds

    figure, (wave_axis, attention_axis) = _new_figure(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    wave_axis.plot(np.arange(len(waveform)) / sampling_rate, waveform, color="0.4", linewidth=0.5)
    wave_axis.set_ylabel("amplitude")
    predicted = int(np.argmax(maps["logits"]))
    wave_axis.set_title(title or f"GenreMERT time attention — predicted: {_label_name(model, predicted)}")
    attention_axis.plot(frame_times, maps["attention"], color="tab:blue", label="main attention")
    if maps["counterfactual_attention"] is not None:
        attention_axis.plot(
            frame_times,
            maps["counterfactual_attention"],
            color="tab:red",
            alpha=0.8,
            label=f"counterfactual attention ({model.config.counterfactual})",
        )
    attention_axis.axhline(1.0 / frames, color="0.6", linestyle=":", label="uniform")
    attention_axis.set_xlabel("time (s)")
    attention_axis.set_ylabel("attention weight")
    attention_axis.set_xlim(0, duration)
    peak = max(float(maps["attention"].max()), 1.0 / frames)
    if maps["counterfactual_attention"] is not None:
        peak = max(peak, float(maps["counterfactual_attention"].max()))
    attention_axis.set_ylim(0, 1.15 * peak)  # from 0: near-uniform weights would otherwise show as noise
    attention_axis.ticklabel_format(axis="y", useOffset=False)
    attention_axis.legend(loc="upper right")
    figure.tight_layout()
    return _save_figure(figure, path)


# ----------------------------------------------------------------------------------------------------------------------
# CRNN_FGNL: log-mel helpers, roll attention, Grad-CAM
# ----------------------------------------------------------------------------------------------------------------------


def mel_bin_frequencies(config) -> np.ndarray:
    """Centre frequency in Hz of each mel bin of a CRNN_FGNL config (slaney mel scale, as the model's filters)."""
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    f_max = config.f_max if config.f_max is not None else config.sampling_rate / 2
    mel_points = np.linspace(
        hertz_to_mel(config.f_min, mel_scale="slaney"), hertz_to_mel(f_max, mel_scale="slaney"), config.num_mel_bins + 2
    )
    return np.asarray(mel_to_hertz(mel_points[1:-1], mel_scale="slaney"))  # (num_mel_bins,)


def _draw_log_mel(axis, log_mel: np.ndarray, config, title: str, duration: float, band_hz=None, cmap="magma"):
    """Draw `log_mel` `(mels, frames)` with seconds on x and Hz labels on the mel-bin y axis (grey under an overlay)."""
    image = axis.imshow(log_mel, origin="lower", aspect="auto", cmap=cmap, extent=(0, duration, 0, log_mel.shape[0]))
    centres = mel_bin_frequencies(config)
    ticks = np.linspace(0, log_mel.shape[0] - 1, 6).round().astype(int)
    axis.set_yticks(ticks + 0.5)
    axis.set_yticklabels([f"{centres[tick] / 1000:.1f}k" for tick in ticks])
    axis.set_ylabel("frequency (Hz)")
    axis.set_title(title)
    if band_hz is not None:
        for frequency in band_hz:
            axis.axhline(
                np.interp(frequency, centres, np.arange(len(centres))) + 0.5, color="cyan", linestyle="--", linewidth=1
            )
    return image


def plot_roll_attention(model, waveform, path, seed: int = 0, band_hz=None) -> Path:
    """CRNN_FGNL: left, the log-mel with the FGNL block's roll-weighted non-local response `‖Σ_k w_k Y_k‖` (where the
    attention-mixed non-local features are strong) upsampled over it; right, the MoSE roll weights of the main and,
    when present, the counterfactual attention."""
    _require_kind(model, "crnn_fgnl", "plot_roll_attention")
    waveform = _as_waveform(waveform)
    captured = {}
    handle = model.non_local.register_forward_hook(lambda module, args, output: captured.__setitem__("rolls", output))
    try:
        maps = attention_maps(model, waveform, seed=seed)
        with torch.no_grad():
            log_mel = model.compute_log_mel(model_inputs(model, [waveform])["input_values"])[0]  # (mels, frames)
    finally:
        handle.remove()
    rolls = captured["rolls"][:1]  # (1, N4, C', K), from the last forward (main attention computed on the same rolls)
    weights = torch.as_tensor(maps["attention"], dtype=rolls.dtype, device=rolls.device)  # (K,)
    response = (rolls * weights).sum(-1).norm(dim=-1)  # (1, N4)
    mel_pooled = model.config.num_mel_bins // 2**model.num_pools
    response = response.reshape(1, 1, mel_pooled, -1)  # (1, 1, F4, T4)
    response = F.interpolate(response, size=tuple(log_mel.shape), mode="bilinear", align_corners=False)[0, 0]
    response = (response / response.max().clamp_min(1e-12)).cpu().numpy()  # (mels, frames) in [0, 1]

    duration = len(waveform) / model.config.sampling_rate
    figure, (map_axis, roll_axis) = _new_figure(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    _draw_log_mel(
        map_axis,
        log_mel.cpu().numpy(),
        model.config,
        "log-mel (grey) + FGNL attention response (colour)",
        duration,
        band_hz,
        cmap="gray",
    )
    map_axis.imshow(
        response,
        origin="lower",
        aspect="auto",
        cmap="jet",
        alpha=0.45,
        vmin=0,
        vmax=1,
        extent=(0, duration, 0, response.shape[0]),
    )
    map_axis.set_xlabel("time (s)")
    rolls_index = np.arange(len(maps["attention"]))
    width = 0.4 if maps["counterfactual_attention"] is not None else 0.8
    roll_axis.bar(
        rolls_index - (width / 2 if width < 0.8 else 0), maps["attention"], width, color="tab:blue", label="main"
    )
    if maps["counterfactual_attention"] is not None:
        roll_axis.bar(
            rolls_index + width / 2,
            maps["counterfactual_attention"],
            width,
            color="tab:red",
            label=f"counterfactual ({model.config.counterfactual})",
        )
    roll_axis.set_xticks(rolls_index)
    roll_axis.set_xlabel("roll k")
    roll_axis.set_ylabel("MoSE weight")
    roll_axis.set_ylim(0, 1)
    roll_axis.legend(loc="upper right", fontsize="small")
    predicted = int(np.argmax(maps["logits"]))
    roll_axis.set_title(f"roll weights\npredicted: {_label_name(model, predicted)}")
    figure.tight_layout()
    return _save_figure(figure, path)


EVIDENCE_METHODS = ("integrated_gradients", "grad_cam")
DEFAULT_IG_STEPS = 32


@dataclass
class GradCAM:
    """Evidence map of one recording (paper Fig. 1 b/c): `cam` `(mels, frames)` in [0, 1] on the log-mel grid, the
    `log_mel` itself, the explained class, the `method` that computed the map, the share of the map's mass inside
    `band_hz` (None when no band was given) and, for integrated gradients, the signed per-bin `attribution`
    `(mels, frames)` (unscaled; it sums to logit(log-mel) − logit(silent baseline) up to the path integral's error)."""

    cam: np.ndarray
    log_mel: np.ndarray
    target_class: int
    band_share: float | None = None
    method: str = "integrated_gradients"
    attribution: np.ndarray | None = None


def _integrated_gradients(model, log_mel: torch.Tensor, target_class: int, steps: int, chunk: int = 8) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017) of the `target_class` logit w.r.t. the log-mel `(1, mels,
    frames)`, from a silent baseline (the example's quietest value, its `top_db` floor) along the straight path, with a
    `steps`-point midpoint rule evaluated `chunk` points per batch. Returns the signed attribution `(mels, frames)`."""
    baseline = log_mel.amin()  # a silent spectrogram at this example's floor
    difference = log_mel - baseline  # (1, mels, frames), >= 0
    total = torch.zeros_like(log_mel[0])
    alphas = (torch.arange(steps, dtype=log_mel.dtype, device=log_mel.device) + 0.5) / steps
    for start in range(0, steps, chunk):
        path = (baseline + alphas[start : start + chunk, None, None] * difference).requires_grad_(
            True
        )  # (n, mels, frames)
        score = model(input_features=path).logits[:, target_class].sum()  # eval mode: the n passes are independent
        (gradients,) = torch.autograd.grad(score, path)
        total += gradients.sum(0)
    return total / steps * difference[0]


def grad_cam(
    model,
    waveform,
    target_class: int | None = None,
    layer: nn.Module | None = None,
    band_hz=None,
    method: str = "integrated_gradients",
    steps: int = DEFAULT_IG_STEPS,
) -> GradCAM:
    """Where in the log-mel the evidence for `target_class` (default: the predicted class) lies, for CRNN_FGNL: the
    map of paper Fig. 1 (b)/(c).

    `method="integrated_gradients"` (default): integrated gradients of the class logit w.r.t. the log-mel
    (`input_features`) from a silent baseline (`steps` path points); the map is the positive part (evidence *for* the
    class) at the log-mel's own resolution, scaled to [0, 1]. Grad-CAM at the conv blocks does not show the evidence
    of this architecture reliably (its head reads every frequency row with its own weights, so the per-channel mean
    gradient cancels; see docs/interpretability.md), which is why it is not the default.

    `method="grad_cam"`: Grad-CAM (Selvaraju et al. 2017). The activations `A` of `layer` (default: the last conv
    block, `(1, C, F, T)`) are weighted per channel by the spatial mean of `∂ logit / ∂ A`; `ReLU(Σ_c w_c A_c)` is
    upsampled bilinearly onto the log-mel grid and scaled to [0, 1].

    The model runs in eval mode; the parameters' `.grad` are untouched.
    """
    _require_kind(model, "crnn_fgnl", "grad_cam")
    if method not in EVIDENCE_METHODS:
        raise ValueError(f"`method` must be one of {EVIDENCE_METHODS}, got {method!r}.")
    if layer is not None and method != "grad_cam":
        raise ValueError("`layer` applies to method='grad_cam' only (integrated gradients explain the log-mel itself).")
    if int(steps) < 1:
        raise ValueError(f"`steps` must be at least 1, got {steps}.")
    waveform = _as_waveform(waveform)
    layer = layer if layer is not None else model.conv_blocks[-1]
    captured = {}
    handle = None
    if method == "grad_cam":
        handle = layer.register_forward_hook(lambda module, args, output: captured.__setitem__("activations", output))
    was_training = model.training
    model.eval()
    attribution = None
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):  # cuDNN GRU backward needs train mode
            input_values = model_inputs(model, [waveform])["input_values"]
            log_mel = model.compute_log_mel(input_values).detach()  # (1, mels, frames)
            logits = model(input_features=log_mel).logits  # (1, num_labels)
            if target_class is None:
                target_class = int(logits[0].argmax())
            if not 0 <= target_class < logits.shape[-1]:
                raise ValueError(f"`target_class` must be in [0, {logits.shape[-1] - 1}], got {target_class}.")
            if method == "grad_cam":
                activations = captured["activations"]  # (1, C, F, T)
                (gradients,) = torch.autograd.grad(logits[0, target_class], activations)
            else:
                attribution = _integrated_gradients(model, log_mel, target_class, int(steps)).detach()
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    if method == "grad_cam":
        channel_weights = gradients.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
        cam = F.relu((channel_weights * activations.detach()).sum(dim=1, keepdim=True))  # (1, 1, F, T)
        cam = F.interpolate(cam, size=tuple(log_mel.shape[1:]), mode="bilinear", align_corners=False)[0, 0]
    else:
        cam = F.relu(attribution)  # (mels, frames): evidence for the class
    peak = cam.max()
    cam = (cam / peak if peak > 0 else torch.zeros_like(cam)).cpu().numpy()  # (mels, frames)
    band_share = None
    if band_hz is not None:
        centres = mel_bin_frequencies(model.config)
        in_band = (centres >= band_hz[0]) & (centres <= band_hz[1])
        total = cam.sum()
        band_share = float(cam[in_band].sum() / total) if total > 0 else 0.0
    return GradCAM(
        cam=cam,
        log_mel=log_mel[0].cpu().numpy(),
        target_class=target_class,
        band_share=band_share,
        method=method,
        attribution=None if attribution is None else attribution.float().cpu().numpy(),
    )


_METHOD_TITLES = {"integrated_gradients": "Integrated gradients", "grad_cam": "Grad-CAM"}


def plot_grad_cam(
    model, waveform, path, target_class: int | None = None, band_hz=None, method: str = "integrated_gradients"
) -> Path:
    """CRNN_FGNL: the log-mel (top) and its evidence map (bottom, `grad_cam(..., method=method)`) for `target_class`
    (default: predicted), as paper Fig. 1 (a)–(c). `band_hz` draws dashed lines at a frequency band (e.g. the added
    noise's 3–5 kHz)."""
    result = grad_cam(model, waveform, target_class=target_class, band_hz=band_hz, method=method)
    duration = len(_as_waveform(waveform)) / model.config.sampling_rate
    figure, (mel_axis, cam_axis) = _new_figure(2, 1, sharex=True)
    _draw_log_mel(mel_axis, result.log_mel, model.config, "log-mel spectrogram (dB)", duration, band_hz)
    title = f"{_METHOD_TITLES[result.method]} for class {_label_name(model, result.target_class)}"
    if result.band_share is not None:
        title += f" — {100 * result.band_share:.0f}% of the map in {band_hz[0]:g}–{band_hz[1]:g} Hz"
    _draw_log_mel(cam_axis, result.log_mel, model.config, title, duration, band_hz, cmap="gray")
    cam_axis.imshow(
        result.cam,
        origin="lower",
        aspect="auto",
        cmap="jet",
        alpha=0.5,
        vmin=0,
        vmax=1,
        extent=(0, duration, 0, result.cam.shape[0]),
    )
    cam_axis.set_xlabel("time (s)")
    figure.tight_layout()
    return _save_figure(figure, path)


# ----------------------------------------------------------------------------------------------------------------------
# Representations and t-SNE
# ----------------------------------------------------------------------------------------------------------------------


def _slice_waveform(row) -> np.ndarray:
    if not isinstance(row, dict) or "input_values" not in row:
        raise ValueError("Each slice must be a mapping with `input_values` (the waveform) and `label`.")
    return _as_waveform(row["input_values"], "input_values")


def _batches(slices, batch_size: int, max_slices: int | None):
    count = len(slices) if max_slices is None else min(len(slices), max_slices)
    if count == 0:
        raise ValueError("No slices to evaluate: the dataset is empty.")
    for start in range(0, count, batch_size):
        yield [slices[index] for index in range(start, min(start + batch_size, count))]


def _predict(model, waveforms, counterfactual: bool = False, seed: int = 0, **forward_kwargs):
    """Outputs of `model` (eval mode) on raw waveforms; with `counterfactual`, the counterfactual branch too
    (`forward(return_counterfactual=True)`: computed in eval mode, dropout off)."""
    inputs = model_inputs(model, waveforms)
    with evaluation(model, seed=seed):
        if counterfactual:
            return model(**inputs, return_counterfactual=True, **forward_kwargs)
        return model(**inputs, **forward_kwargs)


def collect_representations(model, slices, batch_size: int = 16, max_slices: int | None = None):
    """Run `model` (eval mode) over `slices` (rows with `input_values` and `label`, e.g. `genremert.slice_songs`)
    and return `(representations (N, D), labels (N,), predictions (N,))` as numpy arrays."""
    _model_kind(model)
    representations, labels, predictions = [], [], []
    for batch in _batches(slices, batch_size, max_slices):
        outputs = _predict(model, [_slice_waveform(row) for row in batch])
        representations.append(outputs.representation.float().cpu().numpy())
        predictions.append(outputs.logits.argmax(-1).cpu().numpy())
        labels.append(np.asarray([int(row["label"]) for row in batch]))
    return np.concatenate(representations), np.concatenate(labels), np.concatenate(predictions)


def plot_tsne(
    representations, labels, label_names, path, seed: int = 0, perplexity: float | None = None, title: str | None = None
) -> Path:
    """t-SNE (2-D) of `representations` `(N, D)` coloured by `labels` `(N,)` with `label_names`, as paper Fig. 4.
    `perplexity` defaults to min(30, (N − 1) / 3)."""
    from sklearn.manifold import TSNE

    representations = np.asarray(representations, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    if representations.ndim != 2 or len(representations) != len(labels):
        raise ValueError(
            f"`representations` must be (N, D) and `labels` (N,), got {representations.shape} and {labels.shape}."
        )
    if len(representations) < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {len(representations)}.")
    label_names = list(label_names)
    if labels.min() < 0 or labels.max() >= len(label_names):
        raise ValueError(
            f"`labels` must index `label_names` (0..{len(label_names) - 1}), got {labels.min()}..{labels.max()}."
        )
    if perplexity is None:
        perplexity = min(30.0, (len(representations) - 1) / 3)
    if not 0 < perplexity < len(representations):
        raise ValueError(f"`perplexity` must be in (0, {len(representations)}), got {perplexity}.")
    embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        representations
    )

    plt = _pyplot()
    figure, axis = _new_figure()
    colours = plt.get_cmap("tab20" if len(label_names) > 10 else "tab10")
    for index, name in enumerate(label_names):
        chosen = labels == index
        if chosen.any():
            axis.scatter(embedding[chosen, 0], embedding[chosen, 1], s=12, color=colours(index % colours.N), label=name)
    axis.set_title(title or f"t-SNE of the representations ({len(labels)} slices)")
    axis.set_xticks([])
    axis.set_yticks([])
    axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", markerscale=1.5)
    figure.tight_layout()
    return _save_figure(figure, path)


# ----------------------------------------------------------------------------------------------------------------------
# The bias probe (paper Fig. 1)
# ----------------------------------------------------------------------------------------------------------------------
