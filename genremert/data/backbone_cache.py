"""An extract-once cache of a frozen backbone's hidden states (`--backbone_cache_dir`).

GenreMERT's backbone is frozen and kept in eval mode, so every epoch recomputes exactly the same hidden states. With a
cache, the first pass stores, per slice, the hidden states the layer aggregation reads (`config.aggregation_layers`,
`(layers, frames, hidden)`, float16 by default or float32 for exact runs); later epochs and later runs (other seeds,
other LCA variants) read them instead of running the backbone.

- Keys: each slice's audio file (path, size, modification time), start, length and rate, and any noise added to it
  (`audio_files._SliceDecoder` gives them as `slice_key`); the folder belongs to one backbone: `manifest.json`
  records the SHA-256 of its weights, its shape, the layer set and the dtype, and a cache made with other weights (or
  layers, or dtype) is refused, naming both.
- Entries are written to a temporary file and renamed, so a half-written entry is never read; an entry that cannot be
  read, has the wrong shape or holds a NaN/inf is recomputed and rewritten. A disk that fills up while an entry is
  written raises an OSError naming the entry and `--backbone_cache_dir`, and leaves no temporary file; an empty or
  torn `manifest.json` is refused, naming it.
- Size: `layers × frames × hidden × bytes` per slice — MERT-v1-95M, 13 layers, 10 s (749 frames), float16: 15.0 MB
  (30.0 MB in float32); GTZAN with 10 s slices and 1 s overlap (≈ 3 per 30 s clip, 1000 clips): ≈ 45 GB in float16.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .audio_files import write_cache_file


DTYPES = {"float16": np.float16, "float32": np.float32}


def backbone_fingerprint(model) -> str:
    """SHA-256 of the backbone's weights (every tensor of its state dict, in key order)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.backbone.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


class BackboneFeatureCache:
    """See the module docstring. `hidden_states(model, input_values, keys)` returns the batch's backbone hidden states
    `(batch, layers, frames, hidden)` in the model's dtype, computing and storing only the missing ones."""

    def __init__(self, cache_dir, model, dtype: str = "float16"):
        if dtype not in DTYPES:
            raise ValueError(f"--backbone_cache_dtype must be one of {list(DTYPES)}, got {dtype!r}.")
        if not getattr(model.config, "freeze_backbone", False) or not hasattr(model, "backbone_hidden_states"):
            raise ValueError(
                "--backbone_cache_dir needs a model with a frozen backbone (GenreMERT with freeze_backbone=True): a "
                "trained backbone changes its hidden states every step."
            )
        self.root = Path(cache_dir)
        self.dtype = dtype
        self.manifest = {
            "backbone_sha256": backbone_fingerprint(model),
            "backbone_config": {
                k: v for k, v in model.config.backbone_config.to_dict().items() if k != "transformers_version"
            },
            "aggregation_layers": list(model.config.aggregation_layers),
            "dtype": dtype,
        }
        path = self.root / "manifest.json"
        if path.is_file():
            existing = self._read_manifest(path)
            for field in ("backbone_sha256", "aggregation_layers", "dtype"):
                if existing.get(field) != self.manifest[field]:
                    raise ValueError(
                        f"--backbone_cache_dir {self.root} was made with another {field} ({existing.get(field)!r}, this "
                        f"model: {self.manifest[field]!r}); its features would be wrong here. Use another folder."
                    )
        else:
            text = json.dumps(self.manifest, indent=1, sort_keys=True).encode("utf-8")
            write_cache_file(path, lambda handle: handle.write(text), "--backbone_cache_dir", self.root)
        self.hits = self.misses = 0

    def _read_manifest(self, path: Path) -> dict:
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            reason = "empty" if path.stat().st_size == 0 else f"not valid JSON: {error}"
        else:
            if isinstance(existing, dict):
                return existing
            reason = f"a JSON {type(existing).__name__}, not an object"
        raise ValueError(
            f"--backbone_cache_dir {self.root}: its manifest {path} is unreadable ({reason}), so it cannot tell which "
            f"backbone the cached features were made with (an interrupted first run or a full disk leaves it so). "
            f"Delete the folder {self.root} (its features are then computed again) or use another "
            f"--backbone_cache_dir."
        )

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def _read(self, key: str, shape: tuple) -> np.ndarray | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            entry = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None  # damaged: recomputed and rewritten
        if entry.dtype != DTYPES[self.dtype] or entry.shape != shape:
            return None
        if not np.isfinite(entry).all():
            warnings.warn(
                f"{path}: non-finite values (NaN or inf) in a --backbone_cache_dir entry; computing it again."
            )
            return None
        return entry

    def _write(self, key: str, array: np.ndarray) -> None:
        stored = array.astype(DTYPES[self.dtype])
        write_cache_file(self._path(key), lambda handle: np.save(handle, stored), "--backbone_cache_dir", self.root)

    @torch.no_grad()
    def hidden_states(self, model, input_values: torch.Tensor, keys) -> torch.Tensor:
        frames = int(model.backbone._get_feat_extract_output_lengths(input_values.shape[-1]))
        shape = (len(model.config.aggregation_layers), frames, model.config.hidden_size)
        entries = [self._read(key, shape) for key in keys]
        missing = [row for row, entry in enumerate(entries) if entry is None]
        if missing:
            computed = model.backbone_hidden_states(input_values[missing]).float().cpu().numpy()
            for position, row in enumerate(missing):
                self._write(keys[row], computed[position])
                # The stored precision is what later epochs read: use it now too, so every epoch sees the same values.
                entries[row] = computed[position].astype(DTYPES[self.dtype])
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        stacked = torch.from_numpy(np.stack(entries).astype(np.float32))
        return stacked.to(device=input_values.device, dtype=model.dtype)
