"""Where an audio model's attention over time sits, against the frame roles of ``genremert.data.attention_audio``: the
mass the main and the counterfactual attention put on the voice (discriminative), the bias instrument (spurious) and
the rest (other).

A slice's role frames (100 per second) are pooled to the model's attention frames (``pool_role_fractions``: the share
of each role in each attention frame), and the mass on a role is `Σ_t attention_t · fraction_t(role)`, averaged over the
slices. The attentions over time: GenreMERT's time attention `(batch, frames)`; CRNN_FGNL's with
``counterfactual_attention="time"`` `(batch, T4)`; the self-attention tagger's classification token attention
`(batch, heads, tokens)`, averaged over the heads, the class token dropped and the rest renormalised (the share of the
time tokens). CRNN_FGNL's MoSE attention is over channel rolls, not time: it has no mass to score.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import torch

from ..data.attention_audio import AUDIO_FRAME_ROLES, ROLE_FRAME_RATE, pool_role_fractions


def time_attention_reason(config) -> str | None:
    """Why a model of `config` has no attention over time to score, or None when it has one."""
    if config.model_type == "crnn_fgnl" and getattr(config, "counterfactual_attention", "mose") != "time":
        return "CRNN_FGNL's attention is MoSE's over channel rolls (counterfactual_attention='mose'), not over time"
    if config.model_type not in ("crnn_fgnl", "self_attention_tagger", "genremert"):
        return f"model_type {config.model_type!r} has no known attention over time"
    return None


def attention_frame_seconds(config) -> float | None:
    """The time step of the model's attention frames, in seconds (None: the frames split the slice evenly)."""
    if config.model_type == "crnn_fgnl":
        return config.hop_length * 2 ** sum(bool(pool) for pool in config.conv_pool) / config.sampling_rate
    if config.model_type == "self_attention_tagger":
        return config.hop_length * math.prod(stride for _, stride in config.conv_strides) / config.sampling_rate
    if config.model_type == "genremert":
        return math.prod(config.backbone_config.conv_stride) / config.sampling_rate
    return None


def time_attention(config, attention: torch.Tensor) -> torch.Tensor:
    """`(batch, frames)` the attention over time of a model output's `attention` (see the module docstring)."""
    if config.model_type == "self_attention_tagger":
        if attention.dim() != 3:
            raise ValueError(
                f"the tagger's attention must be (batch, heads, tokens), got shape {tuple(attention.shape)}"
            )
        over_tokens = attention.float().mean(dim=1)[:, 1:]  # (batch, time tokens): heads averaged, class token out
        return over_tokens / over_tokens.sum(dim=1, keepdim=True).clamp_min(1e-12)
    if attention.dim() != 2:
        raise ValueError(f"{config.model_type}'s time attention must be (batch, frames), got {tuple(attention.shape)}")
    return attention.float()


def fractional_attention_mass(attention: np.ndarray, role_fractions: np.ndarray) -> dict[str, float]:
    """`{role: mean over slices of Σ_t attention_t · fraction_t(role)}` for `attention (n, frames)` and `role_fractions
    (n, frames, roles)` (the shares of `AUDIO_FRAME_ROLES` in each attention frame). With rows of fractions summing to
    1, the masses of a slice sum to its attention's sum."""
    attention = np.asarray(attention, dtype=np.float64)
    role_fractions = np.asarray(role_fractions, dtype=np.float64)
    if role_fractions.ndim != 3 or attention.shape != role_fractions.shape[:2]:
        raise ValueError(
            f"attention {attention.shape} must be (n, frames) and role_fractions {role_fractions.shape} "
            f"(n, frames, {len(AUDIO_FRAME_ROLES)})"
        )
    masses = np.einsum("nt,ntr->nr", attention, role_fractions).mean(axis=0)  # (roles,)
    return {role: float(masses[index]) for index, role in enumerate(AUDIO_FRAME_ROLES)}


@torch.no_grad()
def collect_time_attentions(
    model, slices, collator, batch_size: int, device, autocast_dtype: torch.dtype | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """`(main (n, frames), counterfactual (n, frames) or None)`: the attentions over time of every slice of `slices`
    (a ``slice_songs`` table), in its row order, in eval mode; the counterfactual branch is asked for when the model has
    one. Random draws (a random counterfactual attention) come from a forked RNG: the caller's stream is untouched."""
    was_training = model.training
    model.eval()
    ask_counterfactual = getattr(model, "counterfactual_branch", None) is not None and (
        "return_counterfactual" in inspect.signature(model.forward).parameters
    )
    loader = torch.utils.data.DataLoader(slices, batch_size=batch_size, shuffle=False, collate_fn=collator)
    main, counterfactual = [], []
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        for batch in loader:
            inputs = {
                key: value.to(device)
                for key, value in batch.items()
                if key not in ("labels", "song_index", "slice_keys") and isinstance(value, torch.Tensor)
            }
            if ask_counterfactual:
                inputs["return_counterfactual"] = True
            autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
            with torch.random.fork_rng(devices=devices), autocast:
                outputs = model(**inputs)
            main.append(time_attention(model.config, outputs.attention).cpu())
            if outputs.counterfactual_attention is not None:
                counterfactual.append(time_attention(model.config, outputs.counterfactual_attention).cpu())
    finally:
        model.train(was_training)
    return torch.cat(main).numpy(), torch.cat(counterfactual).numpy() if counterfactual else None


def audio_attention_masses(
    model, slices, slice_roles: np.ndarray, collator, batch_size: int, device, autocast_dtype=None
) -> dict[str, float]:
    """`main_mass_<role>` (and `cf_mass_<role>` with a counterfactual branch) for every role of `AUDIO_FRAME_ROLES`:
    the mass of the model's attention over time on each role, averaged over the slices, for `slice_roles (slices, role
    frames)` (``slice_frame_roles``). `{}` for a model without an attention over time (``time_attention_reason``)."""
    if time_attention_reason(model.config) is not None:
        return {}
    if len(slice_roles) != len(slices):
        raise ValueError(f"slice_roles has {len(slice_roles)} rows for {len(slices)} slices")
    main, counterfactual = collect_time_attentions(model, slices, collator, batch_size, device, autocast_dtype)
    seconds = attention_frame_seconds(model.config)
    frames_per_attention_frame = None if seconds is None else seconds * ROLE_FRAME_RATE
    fractions = pool_role_fractions(slice_roles, main.shape[1], frames_per_attention_frame)  # (n, frames, roles)
    metrics = {f"main_mass_{role}": mass for role, mass in fractional_attention_mass(main, fractions).items()}
    if counterfactual is not None:
        masses = fractional_attention_mass(counterfactual, fractions)
        metrics.update({f"cf_mass_{role}": mass for role, mass in masses.items()})
    return metrics
