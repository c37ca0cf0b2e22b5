"""Convert the LCA authors' released genreMERT checkpoints into a `GenreMERTForAudioClassification` folder.

The reference code (Lin et al., TASLP 2025; github.com/koso019003/Learnable-Counterfactual-Attention) releases
`genreMERT.ckpt` (plain) and `genreMERT_LCA.ckpt` (with the learned counterfactual attention). Both are PyTorch
Lightning checkpoints whose `state_dict` holds:

| reference key                        | our key                                             | note                      |
|--------------------------------------|-----------------------------------------------------|---------------------------|
| `mert.<HuBERT key>`                  | `genremert.backbone.<HuBERT key>`                   | MERT's own key mapping    |
| `aggregator.{weight,bias}`           | `genremert.layer_aggregation.conv.{weight,bias}`    | Conv2d(13→1, 1×1)         |
| `time_att.attention.2.{weight,bias}` | `genremert.time_attention.hidden_conv.{w,b}`        | Conv2d → Conv1d (1→16)    |
| `time_att.attention.4.{weight,bias}` | `genremert.time_attention.score_conv.{w,b}`         | Conv2d → Conv1d (16→1)    |
| `time_att_cf.attention.{2,4}.*`      | `counterfactual_branch.attention.{hidden,score}_conv.*` | LCA checkpoint only   |
| `hidden_layer.{weight,bias}`         | `head.projection.{weight,bias}`                     | Linear(768→32)            |
| `ouput_layer.{weight,bias}`          | `head.classifier.{weight,bias}`                     | Linear(32→labels) [sic]   |

The file is read with `torch.load(weights_only=True)`: no code in it is ever executed. Lightning's
`AttributeDict` hyper-parameters are read as plain dicts through an allow-listed stand-in. Conversion is strict:
a missing, unexpected or mis-shaped key is an error naming it.

```bash
python convert_reference_checkpoint.py --checkpoint weights/genreMERT_LCA.ckpt --output_dir genremert-lca-reference
python convert_reference_checkpoint.py --checkpoint weights/genreMERT_LCA.ckpt --output_dir genremert-lca-export \
    --drop_counterfactual
```
"""

import argparse
import json
import pickle
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data.corpora import GTZAN_GENRES as GTZAN_LABELS  # the reference data module's label order
from .mert_weights import map_mert_state_dict


# The head of the reference model: reference key → our key.
REFERENCE_KEY_MAP = {
    "aggregator.weight": "genremert.layer_aggregation.conv.weight",
    "aggregator.bias": "genremert.layer_aggregation.conv.bias",
    "time_att.attention.2.weight": "genremert.time_attention.hidden_conv.weight",
    "time_att.attention.2.bias": "genremert.time_attention.hidden_conv.bias",
    "time_att.attention.4.weight": "genremert.time_attention.score_conv.weight",
    "time_att.attention.4.bias": "genremert.time_attention.score_conv.bias",
    "hidden_layer.weight": "head.projection.weight",
    "hidden_layer.bias": "head.projection.bias",
    "ouput_layer.weight": "head.classifier.weight",  # sic: the reference's spelling
    "ouput_layer.bias": "head.classifier.bias",
}
# The learned counterfactual time attention of `genreMERT_LCA.ckpt`.
COUNTERFACTUAL_KEY_MAP = {
    "time_att_cf.attention.2.weight": "counterfactual_branch.attention.hidden_conv.weight",
    "time_att_cf.attention.2.bias": "counterfactual_branch.attention.hidden_conv.bias",
    "time_att_cf.attention.4.weight": "counterfactual_branch.attention.score_conv.weight",
    "time_att_cf.attention.4.bias": "counterfactual_branch.attention.score_conv.bias",
}
MERT_PREFIX = "mert."
BACKBONE_PREFIX = "genremert.backbone."
# State of torchmetrics objects the reference LightningModule holds (not model weights): dropped if present.
IGNORED_PREFIXES = ("train_acc.", "valid_acc.")
# Where Lightning versions define `AttributeDict` (the type of `hyper_parameters`).
_ATTRIBUTE_DICT_PATHS = (
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
)


class ConversionError(ValueError):
    """The checkpoint is not a reference genreMERT checkpoint this script can convert (the message says why)."""


class _AttributeDictStandIn(dict):
    """Stand-in for Lightning's `AttributeDict`, allow-listed for `weights_only` loading: creating it gives a plain
    `dict` (the weights-only unpickler fills only exact dicts), so the hyper-parameters arrive as a dict."""

    def __new__(cls, *args, **kwargs):
        return {}


def load_reference_checkpoint(path) -> tuple:
    """Read a Lightning checkpoint with `torch.load(weights_only=True)`. Returns `(state_dict, hyper_parameters)`."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"--checkpoint {path} does not exist.")
    if path.stat().st_size == 0:
        raise ConversionError(f"{path} is empty (0 bytes): not a PyTorch checkpoint.")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):  # torch.save zip archive, or a legacy pickle stream
        raise ConversionError(
            f"{path} is not a PyTorch checkpoint (it starts with {head!r}, expected a torch.save zip archive)."
        )
    stand_ins = [(_AttributeDictStandIn, name) for name in _ATTRIBUTE_DICT_PATHS]
    try:
        with torch.serialization.safe_globals(stand_ins):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        offending = re.search(r"GLOBAL (\S+)", str(error))
        what = f"it refers to the global {offending.group(1)}" if offending else str(error).splitlines()[0]
        raise ConversionError(
            f"{path} cannot be read safely with torch.load(weights_only=True): {what}. This script never unpickles "
            "arbitrary objects; expected a Lightning checkpoint of tensors, numbers, strings and dicts."
        ) from error
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as error:
        reason = str(error) or type(error).__name__
        raise ConversionError(
            f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}: {reason})."
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        found = sorted(checkpoint)[:10] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ConversionError(f"{path}: expected a Lightning checkpoint with a 'state_dict' entry, found {found}.")
    state_dict = checkpoint["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(value, torch.Tensor) for value in state_dict.values()):
        raise ConversionError(f"{path}: 'state_dict' must map parameter names to tensors.")
    hyper_parameters = checkpoint.get("hyper_parameters") or {}
    return state_dict, dict(hyper_parameters) if isinstance(hyper_parameters, dict) else {}


def _reshape(tensor: torch.Tensor, target_shape: torch.Size, source_key: str, target_key: str) -> torch.Tensor:
    """`tensor` in `target_shape` (Conv2d 1×1 → Conv1d 1 kernels); a different number of values is an error."""
    if tuple(tensor.shape) == tuple(target_shape):
        return tensor
    if tensor.numel() != torch.Size(target_shape).numel():
        raise ConversionError(
            f"`{source_key}` has shape {tuple(tensor.shape)}, which cannot fill `{target_key}` of shape "
            f"{tuple(target_shape)}."
        )
    return tensor.reshape(target_shape)


def _partition_keys(state_dict: dict) -> tuple:
    """Split the checkpoint's keys into MERT, head, counterfactual; unknown keys are an error naming them."""
    mert, head, counterfactual, unexpected = {}, {}, {}, []
    for key, tensor in state_dict.items():
        if key.startswith(MERT_PREFIX):
            mert[key[len(MERT_PREFIX) :]] = tensor
        elif key in REFERENCE_KEY_MAP:
            head[key] = tensor
        elif key in COUNTERFACTUAL_KEY_MAP:
            counterfactual[key] = tensor
        elif not key.startswith(IGNORED_PREFIXES):
            unexpected.append(key)
    if unexpected:
        raise ConversionError(
            f"Unexpected keys in the checkpoint's state_dict: {sorted(unexpected)}. Expected 'mert.*', "
            f"{sorted(REFERENCE_KEY_MAP)} and, for the LCA checkpoint, {sorted(COUNTERFACTUAL_KEY_MAP)}."
        )
    missing = sorted(set(REFERENCE_KEY_MAP) - set(head))
    if missing:
        raise ConversionError(f"Missing keys in the checkpoint's state_dict: {missing}.")
    if counterfactual and set(counterfactual) != set(COUNTERFACTUAL_KEY_MAP):
        raise ConversionError(
            "Missing keys in the checkpoint's state_dict: "
            f"{sorted(set(COUNTERFACTUAL_KEY_MAP) - set(counterfactual))} (the counterfactual attention is incomplete)."
        )
    if not mert:
        raise ConversionError("Missing keys in the checkpoint's state_dict: no 'mert.*' backbone weights.")
    return mert, head, counterfactual


def build_config(
    head: dict,
    counterfactual: dict,
    hyper_parameters: dict,
    backbone_config: dict | None = None,
    labels: Sequence[str] | None = None,
    drop_counterfactual: bool = False,
    slice_seconds: float = 10.0,
):
    """The `GenreMERTConfig` of the checkpoint: sizes from the tensor shapes, dropouts from the reference
    hyper-parameters (`config.main_dropout`, `config.cf_dropout`) when present."""
    from configuration_genremert import GenreMERTConfig

    reference_config = hyper_parameters.get("config") if isinstance(hyper_parameters.get("config"), dict) else {}
    num_labels = head["ouput_layer.weight"].shape[0]
    representation_size, hidden_size = head["hidden_layer.weight"].shape
    attention_hidden_size = head["time_att.attention.2.weight"].shape[0]
    num_layers = head["aggregator.weight"].shape[1] if head["aggregator.weight"].dim() > 1 else 1
    if labels is None:
        labels = GTZAN_LABELS if num_labels == len(GTZAN_LABELS) else [f"LABEL_{index}" for index in range(num_labels)]
    labels = list(labels)
    if len(labels) != num_labels:
        raise ConversionError(f"--labels names {len(labels)} classes but `ouput_layer.weight` has {num_labels} rows.")

    kwargs = {}
    if backbone_config is not None:
        kwargs["backbone_config"] = dict(backbone_config)
    layers = reference_config.get("mert_feature_layer", "all")
    if isinstance(layers, (list, tuple)):
        kwargs["aggregation_layers"] = [int(layer) for layer in layers]
    config = GenreMERTConfig(
        attention_hidden_size=int(attention_hidden_size),
        representation_size=int(representation_size),
        classifier_dropout=float(reference_config.get("main_dropout", 0.3)),
        counterfactual_dropout=float(reference_config.get("cf_dropout", 0.6)),
        counterfactual="learned" if counterfactual and not drop_counterfactual else "none",
        slice_seconds=slice_seconds,
        num_labels=num_labels,
        id2label={index: name for index, name in enumerate(labels)},
        label2id={name: index for index, name in enumerate(labels)},
        **kwargs,
    )
    if config.hidden_size != hidden_size:
        raise ConversionError(
            f"`hidden_layer.weight` reads {hidden_size} features but the backbone's hidden size is {config.hidden_size}; "
            "pass the matching backbone configuration."
        )
    if len(config.aggregation_layers) != num_layers:
        raise ConversionError(
            f"`aggregator.weight` mixes {num_layers} hidden states but the configuration aggregates "
            f"{len(config.aggregation_layers)} ({config.aggregation_layers})."
        )
    return config


def convert_reference_checkpoint(
    checkpoint_path,
    backbone_config: dict | None = None,
    labels: Sequence[str] | None = None,
    drop_counterfactual: bool = False,
    slice_seconds: float = 10.0,
):
    """Convert a reference `genreMERT*.ckpt` into a `GenreMERTForAudioClassification` (eval mode).

    `genreMERT_LCA.ckpt` becomes a model with `counterfactual="learned"` holding the reference's counterfactual time
    attention, unless `drop_counterfactual` (the plain model, as exported for inference). `backbone_config`
    (a `HubertConfig` dict) defaults to MERT-v1-95M. Raises `ConversionError` naming any missing, unexpected or
    mis-shaped key.
    """
    from modeling_genremert import GenreMERTForAudioClassification

    state_dict, hyper_parameters = load_reference_checkpoint(checkpoint_path)
    mert, head, counterfactual = _partition_keys(state_dict)
    config = build_config(
        head, counterfactual, hyper_parameters, backbone_config, labels, drop_counterfactual, slice_seconds
    )
    model = GenreMERTForAudioClassification(config)
    expected = model.state_dict()

    try:
        backbone = map_mert_state_dict(model.backbone, mert, str(checkpoint_path))
    except ValueError as error:
        raise ConversionError(f"The 'mert.*' weights do not match the backbone: {error}") from error
    converted = {BACKBONE_PREFIX + key: tensor for key, tensor in backbone.items()}
    key_map = dict(REFERENCE_KEY_MAP)
    if config.counterfactual == "learned":
        key_map.update(COUNTERFACTUAL_KEY_MAP)
    for source_key, target_key in key_map.items():
        converted[target_key] = _reshape(state_dict[source_key], expected[target_key].shape, source_key, target_key)

    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:  # a key mapping that no longer matches modeling_genremert.py
        raise ConversionError(f"Converted weights do not match the model: missing {missing}, unexpected {unexpected}.")
    model.load_state_dict(converted, strict=True)
    return model.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="Reference Lightning checkpoint (genreMERT*.ckpt).")
    parser.add_argument("--output_dir", required=True, help="Folder for the converted model (save_pretrained).")
    parser.add_argument(
        "--drop_counterfactual",
        action="store_true",
        help="Leave out the counterfactual attention of genreMERT_LCA.ckpt (inference-only model).",
    )
    parser.add_argument(
        "--labels",
        default=None,
        help="Comma-separated class names in id order (default: the GTZAN genres for 10 classes).",
    )
    parser.add_argument("--slice_seconds", type=float, default=10.0, help="Slice length the model was trained on.")
    parser.add_argument(
        "--backbone_config",
        default=None,
        help="JSON file with the backbone's HubertConfig fields (default: MERT-v1-95M).",
    )
    args = parser.parse_args(argv)
    labels = [name.strip() for name in args.labels.split(",")] if args.labels else None
    try:
        backbone_config = None
        if args.backbone_config:
            try:
                with open(args.backbone_config, encoding="utf-8") as handle:
                    backbone_config = json.load(handle)
            except (OSError, json.JSONDecodeError) as error:
                raise ConversionError(f"--backbone_config {args.backbone_config}: not a readable JSON file ({error}).")
            if not isinstance(backbone_config, dict):
                raise ConversionError(f"--backbone_config {args.backbone_config}: expected a JSON object.")
        model = convert_reference_checkpoint(
            args.checkpoint,
            backbone_config=backbone_config,
            labels=labels,
            drop_counterfactual=args.drop_counterfactual,
            slice_seconds=args.slice_seconds,
        )
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    model.save_pretrained(args.output_dir)
    num_parameters = sum(parameter.numel() for parameter in model.parameters())
    print(
        f"Converted {args.checkpoint} → {args.output_dir}: GenreMERTForAudioClassification, "
        f"counterfactual={model.config.counterfactual!r}, {num_parameters / 1e6:.2f} M parameters."
    )
    return 0
