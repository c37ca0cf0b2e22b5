"""How a run treats GenreMERT's frozen backbone: the precision it runs in (`--backbone_dtype`) and whether its hidden
states are computed once and read from a cache afterwards (`--backbone_cache`, `--backbone_cache_dir`). The backbone
is most of a GenreMERT epoch's time, so these two decide how long a 300-epoch preset takes; each choice is made for
the hardware and the disk at hand and said in the run's log with its reason.

- Precision: `bfloat16` runs the backbone under `torch.autocast(bfloat16)`. Its weights stay float32 (the saved model,
  its fingerprint and the head are unchanged) and its hidden states leave it as float32, so the head trains in float32
  either way. `auto` picks bfloat16 only where the hardware computes it natively — a CUDA GPU with bfloat16
  (`torch.cuda.is_bf16_supported`), a CPU with the avx512_bf16 or amx_bf16 instructions (`/proc/cpuinfo`); elsewhere
  bfloat16 is emulated, slower than float32, and `auto` keeps float32.
- Cache: a frozen backbone (kept in eval mode) gives every epoch the same hidden states, so the first epoch stores
  them (`data/backbone_cache.py`) and later epochs, evaluations included, read them. The default folder,
  `~/.cache/genremert/backbone/<model type>-<key>` (`$GENREMERT_CACHE/backbone/...` when that is set, as for the
  synthetic audio), is keyed by the backbone's weights, its layers, the input rule (the feature extractor) and both
  precisions, so every run with the same backbone — the seeds and LCA variants of a sweep — shares one extraction, and
  runs that differ never share one. `auto` leaves the cache off, saying why, when the backbone is trained, when a
  `--feature_store` gives the features, when the backbone does not read waveforms, or when the estimated size does not
  fit the free disk space (MERT-v1-95M, 10 s slices: 14.3 MiB per slice in float16; GTZAN ≈ 43 GiB, MagnaTagATune
  ≈ 1 TiB: there, extract a feature store instead, `extract_features.py`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from modeling_lca_genremert import build_feature_extractor

from ..data.backbone_cache import DTYPES as CACHE_DTYPES
from ..data.backbone_cache import backbone_fingerprint


logger = logging.getLogger(__name__)

# CPU instructions that compute bfloat16 natively (Intel Cooper Lake / Sapphire Rapids and later, AMD Zen 4 and later).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# Share of the free disk space a default cache may fill.
DISK_SHARE = 0.9
GIB = 1024**3


# ----------------------------------------------------------------------------------------------------------------------
# Precision
# ----------------------------------------------------------------------------------------------------------------------


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The instruction-set flags of the CPU (Linux's `/proc/cpuinfo`); empty where the file does not exist."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


def bfloat16_support(device: torch.device) -> tuple[bool, str]:
    """`(native, reason)`: whether `device` computes bfloat16 natively (fast), and the evidence in words."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        try:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3 has no including_emulation (and no emulation)
            native = torch.cuda.is_bf16_supported()
        return native, f"CUDA device {name} {'computes' if native else 'does not compute'} bfloat16 natively"
    if device.type == "cpu":
        capability = torch.backends.cpu.get_cpu_capability()
        found = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags()]
        if found:
            return True, f"the CPU has {' and '.join(found)} (torch CPU capability {capability})"
        return False, (
            f"the CPU has neither avx512_bf16 nor amx_bf16 (torch CPU capability {capability}): bfloat16 would be "
            "emulated, slower than float32"
        )
    return False, f"device type {device.type!r}: no native bfloat16 known to this check"


def choose_backbone_dtype(requested: str, device: torch.device) -> tuple[str, str]:
    """`(dtype, reason)` of `--backbone_dtype` (`auto`, `float32`, `bfloat16`) on `device`."""
    if requested == "float32":
        return "float32", "--backbone_dtype float32"
    native, evidence = bfloat16_support(device)
    if requested == "bfloat16":
        return "bfloat16", "--backbone_dtype bfloat16" + ("" if native else f", although {evidence}")
    if requested != "auto":
        raise ValueError(f"--backbone_dtype must be auto, float32 or bfloat16, got {requested!r}.")
    return ("bfloat16" if native else "float32"), f"--backbone_dtype auto: {evidence}"


def run_backbone_in_bfloat16(model) -> None:
    """Runs `model.backbone` under `torch.autocast(bfloat16)` from now on, its hidden states returned in float32 (the
    layer aggregation and the feature cache read float32). The weights are not cast: `model.dtype`, the saved model
    and the backbone's fingerprint stay float32. Applying it twice changes nothing."""
    backbone = model.backbone
    if getattr(backbone, "_runs_in_bfloat16", False):
        return
    forward = backbone.forward

    @functools.wraps(forward)
    def forward_in_bfloat16(*args, **kwargs):
        device_type = next(backbone.parameters()).device.type
        with torch.autocast(device_type, dtype=torch.bfloat16):
            outputs = forward(*args, **kwargs)
        if isinstance(outputs, dict):  # a ModelOutput: assigning a present key updates the attribute too
            if outputs.get("last_hidden_state") is not None:
                outputs["last_hidden_state"] = outputs["last_hidden_state"].float()
            if outputs.get("hidden_states") is not None:
                outputs["hidden_states"] = tuple(state.float() for state in outputs["hidden_states"])
        return outputs

    backbone.forward = forward_in_bfloat16
    backbone._runs_in_bfloat16 = True


# ----------------------------------------------------------------------------------------------------------------------
# Feature cache
# ----------------------------------------------------------------------------------------------------------------------


def default_cache_root() -> Path:
    """`~/.cache/genremert/backbone`, or `$GENREMERT_CACHE/backbone` (the root the synthetic audio uses too)."""
    return Path(os.environ.get("GENREMERT_CACHE", Path.home() / ".cache" / "genremert")) / "backbone"


def default_cache_dir(model, cache_dtype: str, backbone_dtype: str) -> Path:
    """The default `--backbone_cache_dir` of `model`: one folder per backbone weights, layers, input rule (the feature
    extractor's settings) and precisions (the cache's manifest checks the first two only; this key keeps float32 and
    bfloat16 features apart). Hashes the backbone's weights (about 1 s for MERT-v1-95M)."""
    identity = {
        "backbone_sha256": backbone_fingerprint(model),
        "aggregation_layers": list(model.config.aggregation_layers),
        "feature_extractor": build_feature_extractor(model.config).to_dict(),
        "cache_dtype": cache_dtype,
        "backbone_dtype": backbone_dtype,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]
    return default_cache_root() / f"{model.config.backbone_config.model_type}-{key}"


def cache_entry_bytes(model, cache_dtype: str) -> int:
    """Bytes of one slice's cache entry: `layers × frames × hidden` values of `cache_dtype`, plus the .npy header."""
    samples = int(round(model.config.slice_seconds * model.config.sampling_rate))
    frames = int(model.backbone._get_feat_extract_output_lengths(samples))
    values = len(model.config.aggregation_layers) * frames * model.config.hidden_size
    return values * np.dtype(CACHE_DTYPES[cache_dtype]).itemsize + 128


def folder_bytes(folder: Path) -> int:
    """Bytes of the cache entries already in `folder` (0 when it does not exist)."""
    if not folder.is_dir():
        return 0
    return sum(path.stat().st_size for path in folder.glob("*/*.npy"))


def free_bytes(folder: Path) -> int:
    """Free space of the filesystem that holds (or will hold) `folder`."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def cache_refusal(model) -> str | None:
    """Why `--backbone_cache auto` cannot cache this model's backbone, or None when it can."""
    if not getattr(model.config, "freeze_backbone", False):
        return "the backbone is trained (freeze_backbone=False): its hidden states change every step"
    if not hasattr(model.backbone, "_get_feat_extract_output_lengths"):
        return f"the cache holds waveform backbones' states; {model.config.backbone_config.model_type} reads features"
    return None


def choose_backbone_cache(
    mode: str, cache_dir: str | None, cache_dtype: str, model, num_slices: int | None, backbone_dtype: str
) -> tuple[str | None, str]:
    """`(folder or None, reason)` of the backbone feature cache: `--backbone_cache_dir` when given (as before these
    switches, whatever `mode`: `off` is the default); else with `mode="auto"` the default folder when the backbone is frozen and `num_slices` entries fit in
    `DISK_SHARE` of the free space (entries already there count as written); else None. `num_slices` None: not known
    up front (streamed data), so `auto` cannot size the cache and leaves it off."""
    if cache_dir is not None:  # the more specific flag: the cache on in that folder (as before --backbone_cache)
        return str(cache_dir), "--backbone_cache_dir"
    if mode == "off":
        return None, "--backbone_cache off: the backbone runs every epoch"
    refusal = cache_refusal(model)
    if refusal is None and num_slices is None:
        refusal = "the number of slices is not known up front (streamed data), so the cache's size cannot be checked"
    if refusal is not None:
        return None, f"--backbone_cache auto: {refusal}"
    folder = default_cache_dir(model, cache_dtype, backbone_dtype)
    entry = cache_entry_bytes(model, cache_dtype)
    needed = max(0, num_slices * entry - folder_bytes(folder))
    free = free_bytes(folder)
    size = f"{num_slices} slices × {entry / 2**20:.1f} MiB = {num_slices * entry / GIB:.2f} GiB in {cache_dtype}"
    if needed > DISK_SHARE * free:
        return None, (
            f"--backbone_cache auto: the cache would need {needed / GIB:.2f} GiB more ({size}) and {folder.parent} has "
            f"{free / GIB:.2f} GiB free; pass --backbone_cache_dir on a larger disk, or train on a feature store "
            "(extract_features.py, then --feature_store)"
        )
    return str(folder), f"--backbone_cache auto: frozen backbone, {size}, {free / GIB:.1f} GiB free"


def slice_count(slices) -> int | None:
    """The number of slices of every split, or None when a split does not know its length (a streamed one)."""
    try:
        return sum(len(split) for split in slices.values())
    except TypeError:
        return None


def configure_frozen_backbone(model, model_args, training_args, slices, feature_store: str | None = None) -> dict:
    """Applies `--backbone_dtype` and `--backbone_cache` to a model with a backbone (sets
    `training_args.backbone_cache_dir`), logs both choices with their reasons on the logging process, and returns them
    (`backbone_dtype`, `backbone_cache_dir`) for the run's records; `{}` for a model without a backbone."""
    if not hasattr(model, "backbone_hidden_states"):
        return {}
    if feature_store is not None:
        if training_args.should_log:
            logger.warning(f"backbone not run: --feature_store {feature_store} holds its hidden states")
        return {"backbone_dtype": None, "backbone_cache_dir": None}
    dtype, dtype_reason = choose_backbone_dtype(model_args.backbone_dtype, training_args.device)
    if dtype == "bfloat16":
        run_backbone_in_bfloat16(model)
    cache_dir, cache_reason = choose_backbone_cache(
        model_args.backbone_cache,
        training_args.backbone_cache_dir,
        training_args.backbone_cache_dtype,
        model,
        slice_count(slices),
        dtype,
    )
    training_args.backbone_cache_dir = cache_dir
    if training_args.should_log:  # a run's configuration, visible at the default log level like the rank line
        logger.warning(
            f"backbone in {dtype} ({dtype_reason}); feature cache "
            + (f"on at {cache_dir} ({cache_reason})" if cache_dir else f"off ({cache_reason})")
        )
    return {"backbone_dtype": dtype, "backbone_cache_dir": cache_dir}
