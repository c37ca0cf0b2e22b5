"""The library of `extract_features.py`: run a frozen GenreMERT backbone once over a dataset's slices, with every
process of a launch computing its own shards, into a feature store (`data/feature_store.py`) that heads then train on
(`run_classification.py --feature_store DIR`).

The model and dataset flags are `run_classification.py`'s (a preset's model and data fields too), so a store holds
exactly the slices a run with the same flags reads."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser, set_seed

from modeling_lca_genremert import build_feature_extractor

from ..data.feature_store import STORE_DTYPES, bytes_per_hour, extract_store, parse_layers, shard_name
from .arguments import DataTrainingArguments, ModelArguments, _json_to_flags
from .preparation import load_or_build_model, prepare_songs, slice_run_songs
from .store_training import store_metadata
from .trainer import SliceCollator


logger = logging.getLogger(__name__)


@dataclass
class ExtractionArguments:
    """Where the store goes and what it keeps."""

    output_dir: str = field(metadata={"help": "The feature store folder (created; an unfinished one is resumed)."})
    layers: str = field(
        default="all",
        metadata={
            "help": "Hidden states to keep: 'all' or ids such as '0,6,12' (0 = the embeddings). A head trained on "
            "the store aggregates these (or a subset: its config's aggregation_layers)."
        },
    )
    store_dtype: str = field(
        default="float16",
        metadata={
            "help": "float32 (exact: heads train as on the live backbone), float16 (half), int8 (a quarter: symmetric "
            "per slice, layer and channel, dequantized on read).",
            "choices": list(STORE_DTYPES),
        },
    )
    shard_size: int = field(
        default=64,
        metadata={"help": "Slices per shard file (a shard is held in memory while it is computed)."},
    )
    batch_size: int = field(default=8, metadata={"help": "Slices per backbone forward pass."})
    seed: int = field(
        default=42,
        metadata={"help": "Seed of a backbone initialised from the config (run_classification.py's --seed default)."},
    )
    max_shards: int | None = field(
        default=None,
        metadata={"help": "Debugging: stop after this many new shards per process (the store stays resumable)."},
    )
    disable_tqdm: bool = field(default=False, metadata={"help": "No progress bar."})

    def __post_init__(self):
        if self.store_dtype not in STORE_DTYPES:
            raise ValueError(f"--store_dtype must be one of {list(STORE_DTYPES)}, got {self.store_dtype!r}.")
        for name in ("shard_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.max_shards is not None and self.max_shards < 1:
            raise ValueError(f"--max_shards must be >= 1, got {self.max_shards}.")


CLASSES = (ModelArguments, DataTrainingArguments, ExtractionArguments)


def parse_extraction_arguments(argv: list[str] | None = None):
    """`(ModelArguments, DataTrainingArguments, ExtractionArguments)` from flags, or a JSON preset then flags; the
    preset's training fields (epochs, LCA weights, ...) are ignored here."""
    parser = HfArgumentParser(CLASSES, description="Extract a feature store of a frozen GenreMERT backbone.")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        path = os.path.abspath(argv[0])
        try:
            with open(path, encoding="utf-8") as handle:
                preset = json.load(handle)
        except (OSError, ValueError) as error:
            raise ValueError(f"argument file {path} cannot be read as JSON: {error}") from None
        if not isinstance(preset, dict):
            raise ValueError(f"argument file {path} must hold a JSON object of flag names to values.")
        known = {f.name for dataclass_type in CLASSES for f in dataclasses.fields(dataclass_type)}
        argv = _json_to_flags({key: value for key, value in preset.items() if key in known}) + argv[1:]
    model_args, data_args, extraction_args = parser.parse_args_into_dataclasses(args=argv)
    if model_args.model_type != "genremert":
        raise ValueError(
            f"--model_type {model_args.model_type}: a feature store holds a frozen GenreMERT backbone's hidden states; "
            "pass --model_type genremert (with --config_overrides, a preset or --model_name_or_path)."
        )
    if data_args.feature_store is not None:
        raise ValueError("--feature_store reads a store; extract_features.py writes one to --output_dir.")
    return model_args, data_args, extraction_args


def main(argv: list[str] | None = None) -> dict:
    """Extracts this process's shards; the main process prints the throughput and the sizes. Returns the figures."""
    from accelerate import PartialState
    from accelerate.utils import reduce

    model_args, data_args, args = parse_extraction_arguments(argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes of torchrun join a gloo group too
    if data_args.node_local_storage:  # every node extracts the whole store onto its own disk
        rank, world = state.local_process_index, int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        is_main, first = state.is_local_main_process, state.local_main_process_first
    else:  # one store on a shared filesystem, its shards spread over every process of every node
        rank, world = state.process_index, state.num_processes
        is_main, first = state.is_main_process, state.main_process_first
    set_seed(args.seed)
    with first():
        songs, label_names, multi_label = prepare_songs(data_args, args.output_dir)
        model = load_or_build_model(model_args, label_names, data_args.slice_seconds, multi_label)
        model.config.slice_overlap_seconds = float(data_args.slice_overlap_seconds)
        slices, _, _ = slice_run_songs(songs, data_args, model.config, label_names)
    layers = parse_layers(args.layers, model.config.backbone_config.num_hidden_layers + 1)
    model.to(state.device)
    song_ids = sorted({song_id for split in songs.values() for song_id in split["song_id"]})
    collate = SliceCollator(build_feature_extractor(model.config), {song_id: i for i, song_id in enumerate(song_ids)})
    figures = extract_store(
        model,
        slices,
        collate,
        args.output_dir,
        layers=layers,
        dtype=args.store_dtype,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        rank=rank,
        world_size=world,
        is_main=is_main,
        barrier=state.wait_for_everyone,
        max_shards=args.max_shards,
        metadata=store_metadata(data_args, model.config, model_args),
        progress=not args.disable_tqdm,
    )
    totals = torch.tensor([figures["slices"], figures["audio_seconds"]], dtype=torch.float64, device=state.device)
    if state.num_processes > 1:  # the work of every process, over the main process's wall time
        totals = reduce(totals, "sum")
    figures["all_slices"], figures["all_audio_seconds"] = float(totals[0]), float(totals[1])
    if is_main:
        report(figures, args, layers, model.config)
    return figures


def report(figures: dict, args: ExtractionArguments, layers: list[int], config) -> None:
    """The throughput of this extraction and the size of a store per dtype (bytes per hour of audio), printed."""
    seconds = max(figures["seconds"], 1e-9)
    print(
        f"extracted {figures['computed']} shard(s) on process 0 ({figures['skipped']} already done); all processes: "
        f"{figures['all_slices']:.0f} slices, {figures['all_audio_seconds']:.1f} s of audio in {seconds:.2f} s: "
        f"{figures['all_slices'] / seconds:.2f} slices/s, {figures['all_audio_seconds'] / seconds:.2f} s of audio "
        f"per second; store {'complete' if figures['complete'] else 'INCOMPLETE (run again to resume)'}."
    )
    if figures["frames"] is None:
        return
    slice_seconds = float(config.slice_seconds)
    sizes = ", ".join(
        f"{dtype} {bytes_per_hour(dtype, len(layers), figures['frames'], config.hidden_size, slice_seconds) / 1e9:.3f}"
        for dtype in STORE_DTYPES
    )
    on_disk = sum(
        os.path.getsize(os.path.join(args.output_dir, shard_name(shard)))
        for shard in range(figures["num_shards"])
        if os.path.isfile(os.path.join(args.output_dir, shard_name(shard)))
    )
    print(
        f"GB per hour of audio ({len(layers)} layers × {figures['frames']} frames × {config.hidden_size} per "
        f"{slice_seconds:g} s slice): {sizes}; this store ({args.store_dtype}): {on_disk / 1e6:.2f} MB on disk."
    )
