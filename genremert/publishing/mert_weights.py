"""MERT's own checkpoints (a Hub id such as `m-a-p/MERT-v1-95M`, or a folder in MERT's format) into GenreMERT's backbone.

A helper of the library, not of the model class (Transformers keeps the loading of foreign checkpoints out of the
modeling files): `load_mert_weights(model, "m-a-p/MERT-v1-95M")`. The key mapping (`map_mert_state_dict`) is reused by
the conversion of the reference checkpoints (`genremert.conversion`).
"""

import json
import os

import torch
from transformers import HubertConfig


# Keys of MERT checkpoints that stock HubertModel names differently (weight norm of the positional convolution).
_MERT_KEY_RENAMES = {
    "encoder.pos_conv_embed.conv.weight_g": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv_embed.conv.weight_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
}
# Key prefixes of MERT features that a stock HubertModel does not implement: loading them would silently change the
# model, so they are an error.
_MERT_UNSUPPORTED_PREFIXES = {
    "feature_extractor_cqt.": "the CQT feature branch (`feature_extractor_cqt`)",
}
# HubertConfig fields that define the backbone's shape (and hence its state dict and forward pass).
_BACKBONE_SHAPE_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "feat_extract_norm",
    "conv_dim",
    "conv_stride",
    "conv_kernel",
    "conv_bias",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
    "do_stable_layer_norm",
    "feat_proj_layer_norm",
)


def load_mert_weights(
    model,
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
):
    """Loads a MERT checkpoint in MERT's own format into `model.backbone` (a GenreMERT model), strictly.

    `name_or_path` is a local folder or a Hub id (e.g. `"m-a-p/MERT-v1-95M"`) holding `config.json`
    (`model_type` `"mert_model"` or `"hubert"`) and `model.safetensors` (preferred) or `pytorch_model.bin` (read
    with `torch.load(weights_only=True)`). Keys are unprefixed HuBERT keys; MERT's `weight_g`/`weight_v` of the
    positional convolution are mapped to the weight-norm parametrization of the stock `HubertModel`.

    Raises `ValueError` when the checkpoint's config does not match `config.backbone_config` (naming the field),
    when it uses a MERT feature a stock HubertModel lacks, or when keys are missing, unexpected or of the wrong
    shape (naming them). Returns the model.
    """
    folder = _resolve_checkpoint_folder(name_or_path, revision, token, cache_dir, local_files_only)
    config_file = os.path.join(folder, "config.json")
    if not os.path.isfile(config_file):
        raise ValueError(f"MERT checkpoint {name_or_path!r}: no config.json in {folder}.")
    with open(config_file, encoding="utf-8") as handle:
        checkpoint_config = json.load(handle)
    check_mert_config(model.config.backbone_config, checkpoint_config, config_file)

    state_dict = _read_state_dict(folder, name_or_path)
    state_dict = map_mert_state_dict(model.backbone, state_dict, name_or_path)
    model.backbone.load_state_dict(state_dict, strict=True)
    model.train(model.training)  # a frozen backbone stays frozen and in eval mode
    return model


def check_mert_config(backbone_config, checkpoint_config: dict, config_file: str) -> None:
    model_type = checkpoint_config.get("model_type")
    if model_type not in ("mert_model", "hubert"):
        raise ValueError(f"{config_file}: `model_type` must be 'mert_model' or 'hubert', got {model_type!r}.")
    if checkpoint_config.get("feature_extractor_cqt", False):
        raise ValueError(
            f"{config_file}: `feature_extractor_cqt` is true; the CQT branch of MERT is not part of a stock "
            "HubertModel and cannot be loaded (the published MERT-v1 checkpoints do not use it)."
        )
    if checkpoint_config.get("deepnorm", False):
        raise ValueError(
            f"{config_file}: `deepnorm` is true; MERT's DeepNorm layers are not part of a stock HubertModel."
        )
    defaults = HubertConfig()
    expected = backbone_config
    for field in _BACKBONE_SHAPE_FIELDS:
        value = checkpoint_config.get(field, getattr(defaults, field))
        wanted = getattr(expected, field)
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(wanted, tuple):
            wanted = list(wanted)
        if value != wanted:
            raise ValueError(
                f"{config_file}: `{field}` is {value!r} but `config.backbone_config.{field}` is {wanted!r}; build "
                "the model with a backbone_config matching the checkpoint."
            )


def map_mert_state_dict(backbone, state_dict: dict, name_or_path) -> dict:
    expected = backbone.state_dict()
    mapped = {}
    for key, tensor in state_dict.items():
        for prefix, what in _MERT_UNSUPPORTED_PREFIXES.items():
            if key.startswith(prefix):
                raise ValueError(
                    f"MERT checkpoint {name_or_path!r} holds {key!r}: {what} is not part of a stock HubertModel."
                )
        mapped[_MERT_KEY_RENAMES.get(key, key)] = tensor
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    if missing or unexpected:
        inverse = {new: old for old, new in _MERT_KEY_RENAMES.items()}
        missing = [inverse.get(key, key) for key in missing]
        raise ValueError(
            f"MERT checkpoint {name_or_path!r} does not match the backbone: missing keys {missing}, unexpected "
            f"keys {unexpected}."
        )
    for key, tensor in mapped.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"MERT checkpoint {name_or_path!r}: `{key}` has shape {tuple(tensor.shape)}, the backbone expects "
                f"{tuple(expected[key].shape)}."
            )
    return mapped


def _resolve_checkpoint_folder(name_or_path, revision, token, cache_dir, local_files_only) -> str:
    """A local folder as is, otherwise the Hub snapshot of config.json and the weights (safetensors first)."""
    if os.path.isdir(name_or_path):
        return str(name_or_path)
    name = str(name_or_path)
    if name.startswith((".", "/", "~")) or name.count("/") != 1 or os.path.exists(name):
        raise ValueError(
            f"MERT checkpoint {name!r}: not a folder, and not a Hub id of the form 'owner/name' (e.g. "
            "'m-a-p/MERT-v1-95M')."
        )
    from huggingface_hub import hf_hub_download

    download = dict(revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only)
    try:
        config_path = hf_hub_download(name, "config.json", **download)
    except Exception as error:  # noqa: BLE001 - offline, missing repo, gated repo...: say which and why
        raise ValueError(
            f"MERT checkpoint {name!r}: could not fetch config.json from the Hub ({type(error).__name__}: {error})."
        ) from error
    errors = []
    for filename in ("model.safetensors", "pytorch_model.bin"):
        try:
            hf_hub_download(name, filename, **download)
            break
        except Exception as error:  # noqa: BLE001 - reported below if no weights file can be had
            errors.append(f"{filename}: {type(error).__name__}: {error}")
    else:
        raise ValueError(f"MERT checkpoint {name_or_path!r}: no weights file could be loaded ({'; '.join(errors)}).")
    return os.path.dirname(config_path)


def _read_state_dict(folder: str, name_or_path) -> dict:
    safetensors_file = os.path.join(folder, "model.safetensors")
    bin_file = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(safetensors_file):
        from safetensors.torch import load_file

        return load_file(safetensors_file)
    if os.path.isfile(bin_file):
        state_dict = torch.load(bin_file, map_location="cpu", weights_only=True)
        if not isinstance(state_dict, dict):
            raise ValueError(f"{bin_file}: expected a state dict, got {type(state_dict).__name__}.")
        return state_dict
    raise ValueError(f"MERT checkpoint {name_or_path!r}: neither model.safetensors nor pytorch_model.bin in {folder}.")


__all__ = ["load_mert_weights", "map_mert_state_dict", "check_mert_config"]
