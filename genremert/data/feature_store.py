"""A sharded store of a frozen backbone's hidden states: written once by every process of a launch
(`extract_features.py`), read by every later training and evaluation of heads (`run_classification.py
--feature_store DIR`), which then never run the backbone.

The per-slice cache (`backbone_cache.py`, one `.npy` per slice, filled during training) is the small-scale form of the
same idea; at scale a store is a few large files, computed ahead of training by many processes at once, and smaller
on disk (a layer subset, float16 or int8). Its backbone is named by the same fingerprint
(`backbone_cache.backbone_fingerprint`, the SHA-256 of the backbone's weights).

A store folder holds

- `shard-00000.safetensors`, ...: `features` `(rows, layers, frames, hidden)` in the store's dtype; int8 adds `scales`
  `(rows, layers, hidden)` float32. Slice `j` of the store's order lies in shard `j // shard_size`, row
  `j % shard_size`. Shard `k` is computed by process `k % world_size` (disjoint, and the same tensors whatever the
  number of processes: a shard is always computed in the same batches), written to a temporary file and renamed: a
  shard file that exists is finished, and a resumed extraction skips it.
- `index.json`: what the features are (`backbone_sha256`, `backbone_source`, `backbone_config`, `sampling_rate`,
  `layers`, `frames`, `hidden_size`, `dtype`, `quantization`), how the slices were cut (`slicing`, `dataset`), the
  shards, and the splits in order, each with its slices in order as `[song_id, start sample]`; `complete` is true once every shard is
  written. The main process writes it before the first shard and again at the end.

int8 is symmetric per slice, layer and channel: `scale = max_t |x| / 127`, `q = round(x / scale)`; read back as
`q * scale` (error at most `scale / 2`). Bytes per slice: `layers × frames × hidden × bytes` (+ `layers × hidden × 4`
for the int8 scales): MERT-v1-95M (75 frames/s, hidden 768), 13 layers: 10.8 GB per hour of audio in float32,
5.4 GB in float16, 2.7 GB in int8 (`bytes_per_hour`; docs/scaling.md).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from pathlib import Path

import torch

from .audio_files import write_cache_file
from .backbone_cache import backbone_fingerprint


logger = logging.getLogger(__name__)

FORMAT = "genremert-feature-store"
VERSION = 1
INDEX_NAME = "index.json"
STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "int8": torch.int8}
BYTES = {"float32": 4, "float16": 2, "int8": 1}
# Fields of the index that say what the features are: a resumed extraction and a reading run must agree on each.
PLAN_FIELDS = (
    "format",
    "version",
    "backbone_sha256",
    "backbone_config",
    "sampling_rate",
    "layers",
    "dtype",
    "quantization",
    "slicing",
    "dataset",
    "shard_size",
    "num_slices",
    "splits",
)


# ----------------------------------------------------------------------------------------------------------------------
# Sizes, layers, quantization
# ----------------------------------------------------------------------------------------------------------------------


def parse_layers(text: str, num_hidden_states: int) -> list[int]:
    """`--layers`: "all" (every hidden state, 0 = embeddings) or comma-separated ids such as "0,6,12"."""
    if str(text).strip().lower() == "all":
        return list(range(num_hidden_states))
    try:
        layers = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        layers = []
    if not layers or len(set(layers)) != len(layers) or not all(0 <= layer < num_hidden_states for layer in layers):
        raise ValueError(
            f"--layers {text!r}: expected 'all' or distinct hidden-state ids in [0, {num_hidden_states - 1}] "
            "separated by commas (0 = the embeddings), e.g. '0,6,12'."
        )
    return layers


def bytes_per_slice(dtype: str, layers: int, frames: int, hidden: int) -> int:
    """Bytes one slice takes in a shard (the int8 scales included)."""
    scales = layers * hidden * 4 if dtype == "int8" else 0
    return layers * frames * hidden * BYTES[dtype] + scales


def bytes_per_hour(dtype: str, layers: int, frames: int, hidden: int, slice_seconds: float) -> float:
    """Bytes of features per hour of audio, for slices of `slice_seconds` with `frames` frames and no overlap."""
    return 3600.0 / slice_seconds * bytes_per_slice(dtype, layers, frames, hidden)


def quantize_int8(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per (slice, layer, channel). features: (rows, layers, frames, hidden) float32 →
    `(q (rows, layers, frames, hidden) int8, scales (rows, layers, hidden) float32)`."""
    scales = features.abs().amax(dim=2) / 127.0  # (rows, layers, hidden)
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))  # an all-zero channel stays zero
    quantized = torch.round(features / scales.unsqueeze(2)).clamp_(-127, 127).to(torch.int8)
    return quantized, scales.float()


def dequantize_int8(quantized: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """`q * scale`: (..., layers, frames, hidden) int8 and (..., layers, hidden) → float32."""
    return quantized.float() * scales.unsqueeze(-2).float()


def encode(features: torch.Tensor, dtype: str) -> dict[str, torch.Tensor]:
    """The tensors of a shard holding `features` (rows, layers, frames, hidden) float32."""
    if dtype == "int8":
        quantized, scales = quantize_int8(features)
        return {"features": quantized.contiguous(), "scales": scales.contiguous()}
    return {"features": features.to(STORE_DTYPES[dtype]).contiguous()}


# ----------------------------------------------------------------------------------------------------------------------
# The index
# ----------------------------------------------------------------------------------------------------------------------


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.safetensors"


def slice_order(slices) -> list[tuple[str, str, int]]:
    """`(split, song_id, start)` of every slice of a split → slice-table mapping, in the store's order (splits in
    order, then the table's rows)."""
    order = []
    for split, table in slices.items():
        rows = table.with_format(None)
        order += [(split, str(song_id), int(start)) for song_id, start in zip(rows["song_id"], rows["start"])]
    return order


def read_index(store_dir) -> dict:
    """The index of a store folder; a missing, empty or torn file is an error naming it."""
    path = Path(store_dir) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"--feature_store {store_dir}: no {INDEX_NAME} there; not a feature store (make one with "
            "extract_features.py)."
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"--feature_store {store_dir}: {path} is not valid JSON ({error}).") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ValueError(f"--feature_store {store_dir}: {path} is not the index of a {FORMAT} (no 'format' field).")
    if index.get("version") != VERSION:
        raise ValueError(
            f"--feature_store {store_dir}: {path} has version {index.get('version')!r}, expected {VERSION}."
        )
    return index


def write_index(store_dir, index: dict) -> None:
    text = json.dumps(index, indent=1, sort_keys=True).encode("utf-8")
    write_cache_file(Path(store_dir) / INDEX_NAME, lambda handle: handle.write(text), "--output_dir", store_dir)


def plan_differences(existing: dict, planned: dict) -> list[str]:
    """The plan fields in which two indexes differ, each as 'field: store value vs this run's value'."""
    return [
        f"{field}: {existing.get(field)!r} vs {planned.get(field)!r}"
        for field in PLAN_FIELDS
        if existing.get(field) != planned.get(field)
    ]


# ----------------------------------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def backbone_layers(model, batch: dict, layers: list[int]) -> torch.Tensor:
    """The chosen hidden states of a batch, `(batch, layers, frames, hidden)` float32 on the CPU: the model's own
    forward (`output_hidden_states`, the backbone's hidden states as the model reads them)."""
    inputs = {key: value for key, value in batch.items() if key in ("input_values", "input_features", "attention_mask")}
    device = next(model.parameters()).device
    inputs = {key: value.to(device) for key, value in inputs.items()}
    hidden_states = model(**inputs, output_hidden_states=True, return_counterfactual=False).hidden_states
    return torch.stack([hidden_states[layer] for layer in layers], dim=1).float().cpu()


def extract_store(
    model,
    slices,
    collate,
    store_dir,
    *,
    layers: list[int],
    dtype: str = "float16",
    shard_size: int = 64,
    batch_size: int = 8,
    rank: int = 0,
    world_size: int = 1,
    is_main: bool = True,
    barrier=None,
    max_shards: int | None = None,
    metadata: dict | None = None,
    progress: bool = True,
) -> dict:
    """Computes this process's shards of the store (see the module docstring) and returns its figures.

    `slices`: split name → slice table (`slice_songs`); `collate(rows)` turns decoded slice rows into the model's
    inputs (the training collator, so the backbone sees exactly what it sees in training). Shard `k` is this process's
    when `k % world_size == rank`; shards already on disk are skipped. `barrier()` waits for every process (the store
    is marked complete by the main process after it); `max_shards` stops after that many new shards (a debugging and
    testing aid: an interrupted extraction). `metadata`: fields for the index (backbone_source, slicing, dataset).
    Returns `{"computed", "skipped", "slices", "seconds", "audio_seconds", "complete", "frames", "num_shards"}`.
    """
    if dtype not in STORE_DTYPES:
        raise ValueError(f"--store_dtype must be one of {list(STORE_DTYPES)}, got {dtype!r}.")
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"--shard_size and --batch_size must be >= 1, got {shard_size} and {batch_size}.")
    config = model.config
    if not getattr(config, "freeze_backbone", False):
        raise ValueError("a feature store needs a model with a frozen backbone (GenreMERT with freeze_backbone=True).")
    model.eval()
    store_dir = Path(store_dir)
    order = slice_order(slices)
    num_shards = math.ceil(len(order) / shard_size)
    index = {
        "format": FORMAT,
        "version": VERSION,
        "backbone_sha256": backbone_fingerprint(model),
        "backbone_config": {k: v for k, v in config.backbone_config.to_dict().items() if k != "transformers_version"},
        "sampling_rate": int(config.sampling_rate),
        "layers": list(layers),
        "hidden_size": int(config.hidden_size),
        "dtype": dtype,
        "quantization": "int8 symmetric per slice, layer and channel: x = q * scales" if dtype == "int8" else None,
        "shard_size": int(shard_size),
        "num_slices": len(order),
        "shards": [shard_name(shard) for shard in range(num_shards)],
        # a list, not an object: the order of the splits is the order of the slices (index.json sorts its keys)
        "splits": [[split, [[song_id, start] for s, song_id, start in order if s == split]] for split in slices],
        **(metadata or {}),
        "complete": False,
    }
    index = json.loads(json.dumps(index))  # as it reads back (string keys), so that a resumed plan compares equal
    existing = read_index(store_dir) if (store_dir / INDEX_NAME).is_file() else None
    if existing is not None:
        differences = plan_differences(existing, index)
        if differences:
            raise ValueError(
                f"--output_dir {store_dir} holds a feature store made otherwise ({'; '.join(differences)}); resuming "
                "it would mix two kinds of features. Use another --output_dir, or delete that folder."
            )
    elif is_main:
        store_dir.mkdir(parents=True, exist_ok=True)
        write_index(store_dir, index)

    mine = [shard for shard in range(num_shards) if shard % world_size == rank]
    unfinished = [shard for shard in mine if not (store_dir / shard_name(shard)).is_file()]
    todo = unfinished if max_shards is None else unfinished[:max_shards]
    logger.info(
        f"feature store {store_dir}: process {rank} of {world_size}: {len(todo)} shard(s) to compute {todo[:8]}"
        f"{' ...' if len(todo) > 8 else ''}, {len(mine) - len(unfinished)} already done, of {num_shards}."
    )
    bar = None
    if progress and is_main:
        from tqdm.auto import tqdm

        total = sum(min(shard_size, len(order) - shard * shard_size) for shard in todo)
        bar = tqdm(total=total, unit="slice", desc=f"extract (process 0: {len(todo)} of {len(mine)} shards to do)")
    started, computed_slices = time.perf_counter(), 0
    frames = existing.get("frames") if existing else None
    offsets, total_rows = {}, 0
    for split, table in slices.items():  # the store position of each split's first slice
        offsets[split], total_rows = total_rows, total_rows + len(table)
    for shard in todo:
        first = shard * shard_size
        members = order[first : first + shard_size]
        parts = []
        for start in range(0, len(members), batch_size):
            positions = range(first + start, first + min(start + batch_size, len(members)))
            rows = [slices[order[j][0]][j - offsets[order[j][0]]] for j in positions]
            parts.append(backbone_layers(model, collate(rows), layers))  # (batch, layers, frames, hidden)
            if bar is not None:
                bar.update(len(rows))
        features = torch.cat(parts)  # (rows, layers, frames, hidden)
        if not torch.isfinite(features).all():
            raise ValueError(f"shard {shard} of {store_dir}: the backbone gave NaN/inf features (check the audio).")
        frames = int(features.shape[2])
        payload = _safetensors_bytes(encode(features, dtype), {"shard": str(shard), "rows": str(len(members))})
        write_cache_file(store_dir / shard_name(shard), lambda handle: handle.write(payload), "--output_dir", store_dir)
        computed_slices += len(members)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    if barrier is not None:
        barrier()
    complete = all((store_dir / shard_name(shard)).is_file() for shard in range(num_shards))
    if is_main and complete:
        finished = read_index(store_dir)
        finished["complete"] = True
        finished["frames"] = frames if frames is not None else _frames_of(store_dir)
        write_index(store_dir, finished)
    slice_seconds = float((metadata or {}).get("slicing", {}).get("slice_seconds", 0.0))
    return {
        "computed": len(todo),
        "skipped": len(mine) - len(unfinished),
        "slices": computed_slices,
        "seconds": seconds,
        "audio_seconds": computed_slices * slice_seconds,
        "complete": complete,
        "frames": frames,
        "num_shards": num_shards,
    }


def _safetensors_bytes(tensors: dict, metadata: dict) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata=metadata)


def _frames_of(store_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(store_dir / shard_name(0), framework="pt") as handle:
        return int(handle.get_slice("features").get_shape()[2])


# ----------------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------------


class FeatureStore:
    """A finished store, read row by row (`features(split, song_id, start)` → `(layers, frames, hidden)` float32,
    int8 dequantized). Keeps the last `open_shards` shard files open; picklable (DataLoader workers reopen them)."""

    def __init__(self, store_dir, open_shards: int = 16):
        self.root = Path(store_dir)
        self.index = read_index(self.root)
        if not self.index.get("complete"):
            missing = [name for name in self.index["shards"] if not (self.root / name).is_file()]
            raise ValueError(
                f"--feature_store {self.root} is incomplete ({len(missing)} of {len(self.index['shards'])} shards "
                f"missing, e.g. {missing[:3]}): its extraction was interrupted. Run extract_features.py again with "
                "the same flags; it resumes where it stopped."
            )
        self.shard_size = int(self.index["shard_size"])
        self.position = {}
        for split, members in self.index["splits"]:
            for song_id, start in members:
                self.position[(split, str(song_id), int(start))] = len(self.position)
        self.open_shards = open_shards
        self._handles: OrderedDict = OrderedDict()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = OrderedDict()
        return state

    @property
    def layers(self) -> list[int]:
        return list(self.index["layers"])

    def missing(self, split: str, keys) -> list[tuple[str, int]]:
        """The `(song_id, start)` of `keys` that the store does not hold for `split`."""
        return [(song_id, start) for song_id, start in keys if (split, str(song_id), int(start)) not in self.position]

    def _handle(self, shard: int):
        handle = self._handles.get(shard)
        if handle is None:
            from safetensors import safe_open

            handle = safe_open(self.root / shard_name(shard), framework="pt")
            self._handles[shard] = handle
            if len(self._handles) > self.open_shards:
                self._handles.popitem(last=False)
        else:
            self._handles.move_to_end(shard)
        return handle

    def features(self, split: str, song_id: str, start: int, layers: list[int] | None = None) -> torch.Tensor:
        """One slice's hidden states `(layers, frames, hidden)` float32; `layers` selects hidden-state ids among the
        store's (default: all it keeps)."""
        position = self.position.get((split, str(song_id), int(start)))
        if position is None:
            raise KeyError(f"--feature_store {self.root} has no slice ({split}, {song_id}, start {start}).")
        shard, row = divmod(position, self.shard_size)
        handle = self._handle(shard)
        values = handle.get_slice("features")[row : row + 1][0]  # (layers, frames, hidden)
        if self.index["dtype"] == "int8":
            values = dequantize_int8(values, handle.get_slice("scales")[row : row + 1][0])
        values = values.float()
        if layers is not None and list(layers) != self.layers:
            values = values[[self.layers.index(layer) for layer in layers]]
        return values


class StoreSliceReader:
    """The transform of a slice table read from a store: `(song_id, start)` rows → `backbone_hidden_states`
    `(layers, frames, hidden)`, `label`, `song_id`. Replaces `audio_files._SliceDecoder` for a run on stored
    features."""

    def __init__(self, store: FeatureStore, split: str, layers: list[int]):
        self.store = store
        self.split = split
        self.layers = list(layers)

    def __call__(self, batch: dict) -> dict:
        return {
            "backbone_hidden_states": [
                self.store.features(self.split, song_id, start, self.layers)
                for song_id, start in zip(batch["song_id"], batch["start"])
            ],
            "label": list(batch["label"]),
            "song_id": list(batch["song_id"]),
        }


def read_slices_from_store(slices, store: FeatureStore, layers: list[int]):
    """`slices` (split → slice table) reading each slice's features from `store` instead of decoding its audio.
    A slice the store lacks is refused up front, naming the split, the first few and how many."""
    read = {}
    for split, table in slices.items():
        rows = table.with_format(None)
        missing = store.missing(split, zip(rows["song_id"], rows["start"]))
        if missing:
            raise ValueError(
                f"--feature_store {store.root} lacks {len(missing)} of the {len(table)} {split} slices of this run, "
                f"e.g. {missing[:3]} (song_id, start sample): it was extracted from other songs or another split. "
                "Extract it with the dataset flags of this run."
            )
        copy = table.with_format(None)
        copy.set_transform(StoreSliceReader(store, split, layers))
        read[split] = copy
    return read
