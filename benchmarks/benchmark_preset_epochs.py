#!/usr/bin/env python
"""GenreMERT preset epochs: the preset's defaults (`--backbone_cache auto --backbone_dtype auto`: the frozen backbone
computed once, in bfloat16 where the hardware has it) against the run as it was before them (`--backbone_cache off
--backbone_dtype float32`: the backbone recomputed in float32 every epoch), interleaved in one process.

Each run is `run_classification.py`'s `main` on a real preset file (`configs/genremert_lca.json` by default) with its
training settings untouched — batch 16, 10 s slices with 1 s overlap, evaluation and a checkpoint every epoch, the best
model kept, LCA with its warm-up — except: the backbone has random weights (nothing is downloaded) of a reduced shape
on CPU (`--backbone reduced`: hidden 256, 4 layers, 256-channel conv stack; `mert-95m`: the full shape), the songs
are synthetic (`--songs` songs of 19 s: two 10 s slices each), `--epochs` epochs, and `--workers` data-loader workers.
An epoch is timed from its start to the end of its checkpoint (training steps, evaluation and save). Rounds alternate
the order (A B, then B A, ...), each round with a fresh cache folder, so the preset's first epoch always fills it; the
figure is the median over rounds of the per-round ratio of the median later epoch (before / preset; > 1: the preset is
faster), with its range and the load average before and after.

    python benchmarks/benchmark_preset_epochs.py                       # reduced backbone, 3 rounds of 3 epochs
    python benchmarks/benchmark_preset_epochs.py --rounds 5 --epochs 4 --backbone mert-95m
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genremert.training import run as training_run  # noqa: E402
from genremert.training.run_folder import ChecksumCallback  # noqa: E402


BACKBONES = {
    "reduced": {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
        "conv_dim": [256] * 7,
    },
    "mert-95m": {},
}
VARIANTS = {
    "before": ["--backbone_cache", "off", "--backbone_dtype", "float32"],
    "preset": [],  # the preset's own auto / auto
}


class EpochClock(ChecksumCallback):
    """The run's checksum callback, also timing each epoch from its start to the end of its checkpoint."""

    durations: list[float] = []

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        result = super().on_save(args, state, control, **kwargs)
        EpochClock.durations.append(time.perf_counter() - self._start)
        return result


def preset_file(args, folder: Path) -> Path:
    """The preset with its Hub weights removed, the synthetic songs and this benchmark's epochs and workers."""
    values = json.loads(Path(args.preset).read_text(encoding="utf-8"))
    values.pop("backbone_name_or_path", None)
    overrides = ",".join(
        f"backbone_config.{key}={json.dumps(value)}" for key, value in BACKBONES[args.backbone].items()
    )
    values.update(
        dataset="synthetic",
        split="album",
        num_train_epochs=args.epochs,
        dataloader_num_workers=args.workers,
        report_to=["none"],
        disable_tqdm=True,
        config_overrides=",".join(part for part in (values.get("config_overrides"), overrides) if part),
    )
    path = folder / "preset.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def run_epochs(preset: Path, variant: str, data_dir: Path, folder: Path, args) -> list[float]:
    os.environ["GENREMERT_CACHE"] = str(folder / "cache")  # a fresh default cache: the first epoch fills it
    synthetic = {"num_classes": 3, "albums_per_class": 4, "songs_per_album": args.songs // 12, "song_seconds": 19.0}
    EpochClock.durations = []
    training_run.main(
        [
            str(preset),
            "--data_dir",
            str(data_dir),
            "--synthetic_options",
            json.dumps(synthetic),
            "--output_dir",
            str(folder / variant),
            "--do_predict",
            "false",
            *VARIANTS[variant],
        ]
    )
    return list(EpochClock.durations)


def spread(values) -> str:
    return f"{statistics.median(values):.2f}× ({min(values):.2f}-{max(values):.2f})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=str(ROOT / "configs" / "genremert_lca.json"))
    parser.add_argument("--backbone", choices=list(BACKBONES), default="reduced")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first fills the cache)")
    parser.add_argument("--songs", type=int, default=24, help="synthetic songs in all (a multiple of 12)")
    parser.add_argument("--workers", type=int, default=0, help="dataloader_num_workers (the presets say 2)")
    args = parser.parse_args(argv)
    training_run.ChecksumCallback = EpochClock
    training_run.logger.setLevel("ERROR")
    load_before = os.getloadavg()
    print(
        f"{Path(args.preset).name}, backbone {args.backbone} (random weights), {args.songs} synthetic songs of 19 s, "
        f"{args.epochs} epochs, {args.workers} workers, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs"
    )
    ratios, first = [], []
    with tempfile.TemporaryDirectory() as scratch:
        preset = preset_file(args, Path(scratch))
        data_dir = Path(scratch) / "songs"
        for index in range(args.rounds):
            order = list(VARIANTS) if index % 2 == 0 else list(VARIANTS)[::-1]
            times = {}
            with tempfile.TemporaryDirectory(dir=scratch) as folder:
                for variant in order:
                    times[variant] = run_epochs(preset, variant, data_dir, Path(folder), args)
            later = {variant: statistics.median(values[1:]) for variant, values in times.items()}
            ratios.append(later["before"] / later["preset"])
            first.append(times["preset"][0] / times["before"][0])
            print(
                f"round {index + 1} ({' then '.join(order)}): epochs before "
                + " / ".join(f"{t:.2f}" for t in times["before"])
                + " s; preset "
                + " / ".join(f"{t:.2f}" for t in times["preset"])
                + f" s; later epochs {ratios[-1]:.1f}× faster; first epoch {first[-1]:.2f}× the time"
            )
    load_after = os.getloadavg()
    print(f"epochs after the first, before / preset: {spread(ratios)} (median of {args.rounds} per-round ratios)")
    print(f"first epoch, preset / before (the cache being written): {spread(first)}")
    print(
        f"load average before {'/'.join(f'{x:.2f}' for x in load_before)}, after {'/'.join(f'{x:.2f}' for x in load_after)}"
    )


if __name__ == "__main__":
    main()
