#!/usr/bin/env python
"""Training throughput (slices per second) of GenreMERT and CRNN_FGNL, plain and with LCA, and the LCA/plain ratio.

Measures the real training path: `LCATrainer` steps (slice collator → forward → LCA loss → backward → Adam step) on
random waveforms, after `--warmup_steps` untimed ones; each run's figure is its median step. `--rounds` rounds each
run plain then LCA (A B A B ..., so that other jobs on a shared machine slow both alike); printed are the medians of
the rounds, the median of the per-round LCA / plain ratios with their spread (min-max), and `os.getloadavg()` before
and after. On CPU the GenreMERT backbone is reduced by default (`--genremert_backbone reduced`: hidden 256, 4 layers;
the head and the LCA branch are the real ones); `--genremert_backbone mert-95m` times the full MERT-v1-95M shape
(random weights: the speed is the same). `--cache` instead times epochs without and with the backbone feature cache,
interleaved the same way.

    python benchmarks/benchmark_training.py                        # both models, CPU defaults
    python benchmarks/benchmark_training.py --models crnn_fgnl --batch_size 16 --steps 10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configuration_genremert import (
    MERT_V1_95M_BACKBONE,
    CRNNFGNLConfig,
    GenreMERTConfig,
)
from genremert import (
    CRNNFGNLForAudioClassification,
    GenreMERTForAudioClassification,
    LCATrainer,
    LCATrainingArguments,
    SliceCollator,
    build_feature_extractor,
)


REDUCED_BACKBONE = dict(
    MERT_V1_95M_BACKBONE,
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=1024,
    conv_dim=[256] * 7,
)


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step."""

    def __init__(self):
        self.durations, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.durations.append(time.perf_counter() - self._start)


def benchmark_arguments(output_dir: str, args, **overrides) -> LCATrainingArguments:
    """Training arguments of a timed run: no saving, evaluation, logging or progress bars; LCA from the first step."""
    return LCATrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=args.batch_size,
        cf_warmup_epochs=0,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        label_names=["labels", "song_index"],
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        use_cpu=args.device == "cpu",
        seed=0,
        **overrides,
    )


def build(model_type: str, counterfactual: str, args):
    if model_type == "crnn_fgnl":
        config = CRNNFGNLConfig(
            num_labels=20,
            counterfactual=counterfactual,
            slice_seconds=args.crnn_slice_seconds,
        )
        return CRNNFGNLForAudioClassification(config)
    backbone = dict(MERT_V1_95M_BACKBONE) if args.genremert_backbone == "mert-95m" else dict(REDUCED_BACKBONE)
    config = GenreMERTConfig(
        backbone_config=backbone,
        num_labels=10,
        counterfactual=counterfactual,
        slice_seconds=args.genremert_slice_seconds,
    )
    return GenreMERTForAudioClassification(config)


def throughput(model_type: str, counterfactual: str, args) -> float:
    torch.manual_seed(0)
    model = build(model_type, counterfactual, args)
    config = model.config
    samples = int(config.slice_seconds * config.sampling_rate)
    rng = np.random.default_rng(0)
    num_rows = args.batch_size * (args.steps + args.warmup_steps)
    rows = [
        {
            "input_values": (0.1 * rng.standard_normal(samples)).astype(np.float32),
            "label": int(i % config.num_labels),
            "song_id": f"s{i // 4}",
        }
        for i in range(num_rows)
    ]
    song_index_of = {f"s{i}": i for i in range(num_rows // 4 + 1)}
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = benchmark_arguments(
            output_dir, args, max_steps=args.steps + args.warmup_steps, learning_rate=1e-4, bf16=args.bf16
        )
        trainer = LCATrainer(
            model=model,
            args=training_args,
            train_dataset=rows,
            data_collator=SliceCollator(build_feature_extractor(config), song_index_of),
            callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.train()
    timed = sorted(timer.durations[args.warmup_steps :])
    return args.batch_size / timed[len(timed) // 2]  # median step: robust to other jobs on the machine


class EpochTimer(TrainerCallback):
    def __init__(self):
        self.durations = []

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self._start)


def cached_epoch_times(args, cache_dir: str | None) -> list:
    """Epoch times of GenreMERT (full MERT-v1-95M shape, LCA) on `--cache_slices` 10 s slices, with the backbone
    feature cache in `cache_dir` (None: without)."""
    torch.manual_seed(0)
    config = GenreMERTConfig(backbone_config=dict(MERT_V1_95M_BACKBONE), num_labels=10, counterfactual="learned")
    model = GenreMERTForAudioClassification(config)
    samples = int(config.slice_seconds * config.sampling_rate)
    rng = np.random.default_rng(0)
    rows = [
        {
            "input_values": (0.1 * rng.standard_normal(samples)).astype(np.float32),
            "label": i % 10,
            "song_id": f"s{i}",
            "slice_key": f"{i:040d}",
        }
        for i in range(args.cache_slices)
    ]
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = benchmark_arguments(
            output_dir,
            args,
            num_train_epochs=args.cache_epochs,
            backbone_cache_dir=cache_dir,
            backbone_cache_dtype="float16",
        )
        trainer = LCATrainer(
            model=model,
            args=training_args,
            train_dataset=rows,
            data_collator=SliceCollator(build_feature_extractor(config), {f"s{i}": i for i in range(len(rows))}),
            callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.train()
    return timer.durations


def spread(ratios) -> str:
    """The median of per-round ratios and their min-max, e.g. `1.02× (0.97-1.10)`."""
    return f"{np.median(ratios):.2f}× ({min(ratios):.2f}-{max(ratios):.2f})"


def load_text(load) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["crnn_fgnl", "genremert"],
        choices=["crnn_fgnl", "genremert"],
    )
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument(
        "--steps",
        type=int,
        default=4,
        help="timed optimizer steps per configuration and round",
    )
    parser.add_argument(
        "--rounds",
        "--repeats",
        dest="rounds",
        type=int,
        default=3,
        help="interleaved rounds (plain then LCA, or without then with the cache); medians and per-round ratios",
    )
    parser.add_argument("--warmup_steps", type=int, default=1, help="untimed steps first")
    parser.add_argument("--crnn_slice_seconds", type=float, default=5.0)
    parser.add_argument("--genremert_slice_seconds", type=float, default=10.0)
    parser.add_argument(
        "--genremert_backbone",
        choices=["reduced", "mert-95m"],
        default=None,
        help="default: mert-95m on GPU, reduced on CPU",
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cuda" if torch.cuda.is_available() else "cpu",
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPU)")
    parser.add_argument(
        "--cache", action="store_true", help="instead: GenreMERT epoch times with and without the backbone cache"
    )
    parser.add_argument("--cache_slices", type=int, default=16, help="10 s slices of the --cache epochs")
    parser.add_argument("--cache_epochs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.cache:
        print(
            f"GenreMERT, MERT-v1-95M shape, LCA, {args.cache_slices} slices of 10 s, batch {args.batch_size}, "
            f"{torch.get_num_threads()} threads, float16 cache, {args.rounds} rounds"
        )
        load, ratios = os.getloadavg(), []
        for round_index in range(args.rounds):  # without, then with the cache (a fresh one), every round
            without = cached_epoch_times(args, None)
            with tempfile.TemporaryDirectory() as cache_dir:
                with_cache = cached_epoch_times(args, cache_dir)
                size = sum(f.stat().st_size for f in Path(cache_dir).rglob("*.npy"))
            ratios.append(sum(without[1:]) / sum(with_cache[1:]))
            print(
                f"round {round_index + 1}: epoch times without cache (s) "
                + ", ".join(f"{t:.1f}" for t in without)
                + "; with cache "
                + ", ".join(f"{t:.1f}" for t in with_cache)
            )
        print(
            f"epochs after the first: {spread(ratios)} faster with the cache (median of per-round ratios, min-max); "
            f"cache size {size / 2**20:.1f} MiB ({size / 2**20 / args.cache_slices:.1f} MiB per slice); "
            f"load {load_text(load)} -> {load_text(os.getloadavg())}"
        )
        return
    if args.genremert_backbone is None:
        args.genremert_backbone = "mert-95m" if args.device == "cuda" else "reduced"

    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}, "
        f"{args.steps} timed steps after {args.warmup_steps}; CRNN_FGNL slices {args.crnn_slice_seconds} s at "
        f"16 kHz; GenreMERT slices {args.genremert_slice_seconds} s at 24 kHz, backbone {args.genremert_backbone}"
        + (" (hidden 256, 4 layers)" if args.genremert_backbone == "reduced" else " (MERT-v1-95M shape)")
    )
    print(f"torch {torch.__version__}; the LCA runs train every term (no warm-up)")
    print(f"{args.rounds} rounds of plain then LCA; slices/s are medians of the rounds, LCA / plain the median of the")
    print("per-round ratios with their min-max")
    print(f"{'model':<12}{'plain slices/s':>16}{'LCA slices/s':>16}{'LCA / plain':>22}   load (1/5/15 min)")
    for model_type in args.models:
        load, plain, lca = os.getloadavg(), [], []
        for _ in range(args.rounds):
            plain.append(throughput(model_type, "none", args))
            lca.append(throughput(model_type, "learned", args))
        ratios = [b / a for a, b in zip(plain, lca)]
        print(
            f"{model_type:<12}{np.median(plain):>16.2f}{np.median(lca):>16.2f}{spread(ratios):>22}   "
            f"{load_text(load)} -> {load_text(os.getloadavg())}",
            flush=True,
        )


if __name__ == "__main__":
    main()
