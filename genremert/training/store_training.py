"""Training and evaluating heads on a feature store (`run_classification.py --feature_store DIR`): the run's model is
checked against the store (backbone, layers, sampling rate, slicing, dataset), its slices read the stored hidden
states (`data/feature_store.py`), and the backbone never runs. Its weights are read once, after training, only to save
a complete, pipeline-ready model folder (and checked against the store's fingerprint then)."""

from __future__ import annotations

import json
import logging
import os

import torch

from ..data.backbone_cache import backbone_fingerprint
from ..data.feature_store import FeatureStore, read_slices_from_store
from .trainer import SliceCollator


logger = logging.getLogger(__name__)

# The data flags that decide which audio a slice holds (beside the slicing): a store and a run must agree on each.
# `data_dir` is left out: another node may hold the same data under another path (--node_local_storage).
STORE_DATA_FIELDS = (
    "dataset",
    "split",
    "split_seed",
    "dataset_name",
    "dataset_config_name",
    "dataset_revision",
    "train_split_name",
    "validation_split_name",
    "test_split_name",
    "split_fractions",
    "stems_dir",
    "synthetic_options",
    "bias_class",
    "bias_band_hz",
    "bias_snr_db",
)


def backbone_source(model_args) -> dict | None:
    """Where a model's backbone weights come from: `{"kind": "model", "name": ...}` (a GenreMERT folder or Hub id),
    `{"kind": "mert", "name": ...}` (MERT weights), or None (initialised from the config and --seed)."""
    if model_args.model_name_or_path is not None:
        name = model_args.model_name_or_path
        return {"kind": "model", "name": os.path.abspath(name) if os.path.isdir(name) else name}
    if model_args.backbone_name_or_path is not None:
        name = model_args.backbone_name_or_path
        return {"kind": "mert", "name": os.path.abspath(name) if os.path.isdir(name) else name}
    return None


def store_metadata(data_args, config, model_args) -> dict:
    """The index fields of an extraction: the backbone's source, the slicing and the dataset flags."""
    return {
        "backbone_source": backbone_source(model_args),
        "slicing": {
            "slice_seconds": float(config.slice_seconds),
            "slice_overlap_seconds": float(data_args.slice_overlap_seconds),
            "slice_remainder": config.slice_remainder,
        },
        "dataset": {name: getattr(data_args, name) for name in STORE_DATA_FIELDS},
    }


def open_store(data_args, model_args) -> tuple[FeatureStore, dict | None]:
    """`(store, config defaults)`: the store of `--feature_store`, and for a new model (no --model_name_or_path) the
    config fields it implies (the backbone's config, the layers it keeps, its sampling rate), which
    `--config_overrides` may still change."""
    if model_args.model_type != "genremert":
        raise ValueError(
            f"--feature_store holds a frozen GenreMERT backbone's hidden states; --model_type {model_args.model_type} "
            "reads audio. Use --model_type genremert."
        )
    store = FeatureStore(data_args.feature_store)
    if model_args.model_name_or_path is not None:
        return store, None
    index = store.index
    return store, {
        "backbone_config": index["backbone_config"],
        "aggregation_layers": list(index["layers"]),
        "sampling_rate": index["sampling_rate"],
    }


def check_store_matches(store: FeatureStore, model, data_args, model_args) -> dict | None:
    """Refuses a store whose features are not what this model would compute on this run's slices, naming every
    difference; returns the backbone source to read into the model before saving it (None when the model already
    holds the store's backbone)."""
    index, config = store.index, model.config
    problems = []
    if int(config.sampling_rate) != index["sampling_rate"]:
        problems.append(f"sampling_rate: store {index['sampling_rate']}, model {config.sampling_rate}")
    backbone = {k: v for k, v in config.backbone_config.to_dict().items() if k != "transformers_version"}
    model_backbone = json.loads(json.dumps(backbone))  # as the index holds it (string keys)
    differing = sorted(k for k in set(model_backbone) | set(index["backbone_config"])
                       if model_backbone.get(k) != index["backbone_config"].get(k))  # fmt: skip
    if differing:
        shown = ", ".join(
            f"{k} {index['backbone_config'].get(k)!r} vs {model_backbone.get(k)!r}" for k in differing[:4]
        )
        problems.append(f"backbone_config: {shown}")
    absent = [layer for layer in config.aggregation_layers if layer not in index["layers"]]
    if absent:
        problems.append(
            f"layers: the model aggregates hidden states {list(config.aggregation_layers)}, the store keeps "
            f"{index['layers']} (missing {absent})"
        )
    slicing = store_metadata(data_args, config, model_args)["slicing"]
    for key, value in slicing.items():
        if index["slicing"].get(key) != value:
            problems.append(f"{key}: store {index['slicing'].get(key)!r}, this run {value!r}")
    for name in STORE_DATA_FIELDS:
        if index["dataset"].get(name) != getattr(data_args, name):
            problems.append(f"--{name}: store {index['dataset'].get(name)!r}, this run {getattr(data_args, name)!r}")
    to_attach = None
    if not problems:
        stored, source = index["backbone_sha256"], index.get("backbone_source")
        if model_args.backbone_name_or_path is not None:
            requested = backbone_source(model_args)
            if requested != source:
                problems.append(f"backbone weights: store made from {source}, --backbone_name_or_path {requested}")
            to_attach = requested
        elif model_args.model_name_or_path is not None or source is None:
            if backbone_fingerprint(model) != stored:
                problems.append(
                    f"backbone weights: the store's SHA-256 {stored[:12]}… differs from this model's "
                    f"{backbone_fingerprint(model)[:12]}… (from {backbone_source(model_args) or 'the config and --seed'})"
                )
        else:
            to_attach = source
    if problems:
        raise ValueError(
            f"--feature_store {store.root} does not hold this run's features: " + "; ".join(problems) + ". Extract a "
            "store with this run's model and dataset flags (extract_features.py), or use that store's flags."
        )
    return to_attach


def store_slices(slices, store: FeatureStore, model):
    """The run's slice tables, reading each slice's hidden states (`model.config.aggregation_layers`) from `store`."""
    return read_slices_from_store(slices, store, list(model.config.aggregation_layers))


def attach_store_backbone(model, store: FeatureStore, source: dict, model_args) -> None:
    """Reads the store's backbone weights into `model` (before saving it: a complete folder the pipeline can load),
    and checks them against the store's fingerprint."""
    if source["kind"] == "mert":
        from ..publishing.mert_weights import load_mert_weights

        load_mert_weights(
            model, source["name"], revision=model_args.model_revision, token=model_args.token,
            cache_dir=model_args.cache_dir,
        )  # fmt: skip
    else:
        from safetensors.torch import load_file

        path = os.path.join(source["name"], "model.safetensors")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"--feature_store {store.root} was made from the model {source['name']}, whose {path} is needed to "
                "save a complete model folder (its backbone); it is not there. Pass --backbone_name_or_path or "
                "--model_name_or_path with the backbone."
            )
        weights = load_file(path)
        # the backbone's keys: under the base model (`genremert.backbone.`), or at the top in the legacy flat layout
        prefix = next(name for name, module in model.named_modules() if module is model.backbone) + "."
        prefix = prefix if any(key.startswith(prefix) for key in weights) else "backbone."
        backbone = {key[len(prefix) :]: value for key, value in weights.items() if key.startswith(prefix)}
        model.backbone.load_state_dict(backbone, strict=True)
    if backbone_fingerprint(model) != store.index["backbone_sha256"]:
        raise ValueError(
            f"the backbone weights of {source['name']} are not those of --feature_store {store.root} (SHA-256 "
            f"{backbone_fingerprint(model)[:12]}… vs {store.index['backbone_sha256'][:12]}…): they changed since the "
            "extraction. The trained head is not saved with them."
        )
    logger.info(f"the saved model carries the backbone of {source['name']} (the store's, verified by its SHA-256).")


class StoreCollator(SliceCollator):
    """`SliceCollator` for slices read from a feature store: rows carry `backbone_hidden_states`
    `(layers, frames, hidden)` instead of a waveform; the batch gives the model `backbone_hidden_states`
    `(batch, layers, frames, hidden)` with `labels` and `song_index` as usual."""

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = {"backbone_hidden_states": torch.stack([row["backbone_hidden_states"] for row in rows])}
        batch["labels"] = self._labels(rows)
        unknown = [row["song_id"] for row in rows if row["song_id"] not in self.song_index_of]
        if unknown:
            raise ValueError(f"slice of unknown song_id {unknown[0]!r}: it is not in the song index of this run.")
        batch["song_index"] = torch.tensor([self.song_index_of[row["song_id"]] for row in rows], dtype=torch.long)
        return batch
