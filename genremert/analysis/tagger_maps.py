"""Attention heat maps of the self-attention tagger (after Won, Chun & Serra 2019, Fig. 3): where in time the
classification token looks, per layer and head, over the log-mel spectrogram of the slice.

`tag_attention_maps(model, waveform)` returns the numbers; `plot_tag_attention(model, waveform, path)` draws them:
the log-mel spectrogram, a heat map of the classification token's attention over the time steps (one row per head of
each layer, the last layer's rows being the attention LCA counterfactualises), the counterfactual attention when the
model has a branch, and the top tags with their probabilities.
"""

from pathlib import Path

import numpy as np
import torch

from .attention_maps import _as_waveform, _draw_log_mel, _new_figure, _predict, _require_kind, _save_figure, evaluation


def tag_attention_maps(model, waveform, seed: int = 0) -> dict:
    """For one recording `(samples,)` at the model's rate: `layers` `(layers, heads, steps)` — the classification
    token's attention over the time steps in every layer (its own weight left out) —, `counterfactual` `(heads, steps)`
    or None, `log_mel` `(mels, frames)`, `probabilities` `(num_labels,)` (sigmoid for tags, softmax for classes) and
    `step_seconds`, the duration one time step covers."""
    _require_kind(model, "self_attention_tagger", "tag_attention_maps")
    waveform = _as_waveform(waveform)
    branch = getattr(model, "counterfactual_branch", None) is not None
    outputs = _predict(model, [waveform], counterfactual=branch, seed=seed, output_attentions=True)
    layers = [attention[0, :, 0, 1:] for attention in outputs.attentions]  # CLS row, keys without CLS: (heads, steps)
    with evaluation(model, seed):
        log_mel = model.compute_log_mel(torch.from_numpy(waveform)[None].to(model.device))[0]
    logits = outputs.logits[0].float()
    multi_label = model.config.problem_type == "multi_label_classification"
    probabilities = torch.sigmoid(logits) if multi_label else logits.softmax(-1)
    steps = layers[0].shape[-1]
    counterfactual = outputs.counterfactual_attention
    return {
        "layers": torch.stack(layers).float().cpu().numpy(),
        "counterfactual": None if counterfactual is None else counterfactual[0, :, 1:].float().cpu().numpy(),
        "log_mel": log_mel.float().cpu().numpy(),
        "probabilities": probabilities.cpu().numpy(),
        "step_seconds": len(waveform) / model.config.sampling_rate / steps,
    }


def plot_tag_attention(model, waveform, path, seed: int = 0, top_k: int = 5) -> Path:
    """The heat map figure (see the module docstring); returns the PNG's path."""
    maps = tag_attention_maps(model, waveform, seed=seed)
    layers, counterfactual = maps["layers"], maps["counterfactual"]
    duration = maps["step_seconds"] * layers.shape[-1]
    rows = layers.reshape(-1, layers.shape[-1])  # (layers · heads, steps)
    labels = [f"L{layer + 1} h{head + 1}" for layer in range(layers.shape[0]) for head in range(layers.shape[1])]
    if counterfactual is not None:
        rows = np.concatenate([rows, counterfactual])
        labels += [f"CF h{head + 1}" for head in range(counterfactual.shape[0])]
    order = np.argsort(-maps["probabilities"])[:top_k]
    id2label = model.config.id2label
    tags = ", ".join(f"{id2label[int(i)]} {maps['probabilities'][i]:.2f}" for i in order)

    figure, (mel_axis, heat_axis) = _new_figure(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    _draw_log_mel(mel_axis, maps["log_mel"], model.config, f"top tags: {tags}", duration)
    image = heat_axis.imshow(
        rows, origin="upper", aspect="auto", cmap="viridis", extent=(0, duration, len(rows), 0), interpolation="nearest"
    )
    heat_axis.set_yticks(np.arange(len(rows)) + 0.5)
    heat_axis.set_yticklabels(labels, fontsize=7)
    heat_axis.set_xlabel("time (s)")
    heat_axis.set_title("classification-token attention over time (last layer: the one LCA counterfactualises)")
    figure.colorbar(image, ax=heat_axis, fraction=0.03, pad=0.01, label="attention weight")
    figure.tight_layout()
    return _save_figure(figure, path)


__all__ = ["plot_tag_attention", "tag_attention_maps"]
