"""The audio shortcut demo: CRNN_FGNL trained plain and with LCA on the synthetic singer set whose training songs of
one class carry band noise (paper Fig. 1), then tested on clean songs and on songs with the noise added to every class.
(`python demo.py` runs the ground-truth attention study instead: `genremert.demo`.)

    python demo.py --audio            # both runs on CPU (measured times: docs/training.md), in outputs/demo_audio
    python demo.py --audio --quick    # a smoke version (a smaller model, fewer songs), in outputs/demo_audio_quick

A model that learned the shortcut "noise → the biased class" shows it two ways: it recognises the biased class
only when the noise is there (its recall rises from `test` to `test_noisy`), and it gives the biased class to noisy
songs of other classes. The demo prints, side by side for the two runs: frame- and song-level F1 on `test` and
`test_noisy`, the shortcut gap (clean − noisy F1: positive when the noise pulls songs of other classes to the
biased class, negative when it *helps*, i.e. when the biased class is recognised by its noise), the biased class's
recall on both test sets, and how often noisy songs of the other classes are given the biased class — each as the
mean ± std over several training seeds (default 3) per column, then one or two sentences computed from the paired
differences (LCA − plain, same seed; 95 % t-interval and paired t-test, `genremert.experiments`). Every run goes
through `run_experiments`'s sweep over `run_classification.main` (the same code as the training scripts); every
output (`<variant>/seed<k>/` model folders, checkpoints, confusion matrices, TensorBoard logs, summary.md/json/png)
lands under `--output_dir`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time


# The default-size CRNN_FGNL (≈ 0.58 M parameters) on 3 s slices (the paper's shortest), sized so that 3 seeds × 2
# runs fit about 10 minutes on an idle 2-core CPU (measured: docs/training.md). Five albums per class: 1 test,
# 1 validation and 3 training albums, so the model sees three accompaniment styles (fixed per album) per singer.
# 4 songs of 9 s per album (3 slices each): 48 training songs (144 slices per epoch) and 16 songs in each test set;
# 5 epochs, LCA switched on after a 2-epoch warm-up.
FULL = {
    "synthetic": {
        "num_classes": 4,
        "albums_per_class": 5,
        "songs_per_album": 4,
        "song_seconds": 9.0,
    },
    "slice_seconds": 3.0,
    "epochs": 5,
    "warmup": 2,
    "learning_rate": 1e-3,
    "batch_size": 16,
    "config_overrides": None,
}
# LCA weights of the demo. The reference GTZAN weights (0.7, 1.0, 0.6, 2.0, 1.5, 2.0) put 3.5 on the entropies
# against 1.3 on the cross-entropies; on this small set that keeps the predictions near uniform for the few epochs
# the demo can afford. These keep the seed repository's ordering (λ_ce_main > λ_ce_cf, λ_ent_cf > λ_ent_main,
# λ_effect = 1) with the entropies scaled down; change them with --lambda_* flags.
DEMO_LCA_WEIGHTS = {
    "ce_main": 1.0,
    "effect": 1.0,
    "ce_cf": 0.6,
    "ent_cf": 0.3,
    "ent_main": 0.1,
    "att": 1.0,
}
# --quick: a reduced CRNN_FGNL (same architecture, fewer channels and mel bins), fewer and shorter songs.
QUICK = {
    "synthetic": {
        "num_classes": 3,
        "albums_per_class": 3,
        "songs_per_album": 4,
        "song_seconds": 6.0,
    },
    "slice_seconds": 1.0,
    "epochs": 6,
    "warmup": 2,
    "learning_rate": 3e-3,
    "batch_size": 8,
    "config_overrides": "n_fft=512,hop_length=256,num_mel_bins=32,conv_channels=[8,16,16,16],fgnl_reduction=4,"
    "mose_hidden_size=4,gru_hidden_size=16",
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke version (smaller model, fewer songs), written to its own folder"
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="where models, plots and logs go (default: outputs/demo, or outputs/demo_quick with --quick, so that a "
        "quick run never replaces the full demo's folders)",
    )
    parser.add_argument(
        "--data_dir",
        default=None,
        help="cache of the generated audio (default: ~/.cache/genremert)",
    )
    parser.add_argument(
        "--bias_class",
        type=int,
        default=0,
        help="class whose training songs carry the noise",
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of each run")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds of each column (default 0,1,2)")
    for name, value in DEMO_LCA_WEIGHTS.items():
        parser.add_argument(
            f"--lambda_{name}",
            type=float,
            default=value,
            help=f"LCA weight (default {value})",
        )
    args = parser.parse_args(argv)
    if args.output_dir is None:
        args.output_dir = "outputs/demo_audio_quick" if args.quick else "outputs/demo_audio"
    return args


def base_arguments(settings: dict, args: argparse.Namespace) -> list[str]:
    """The run_classification.py arguments shared by every run of the demo (variant, seed and folder come from the
    sweep)."""
    argv = [
        "--model_type", "crnn_fgnl",
        "--dataset", "synthetic",
        "--synthetic_options", json.dumps(settings["synthetic"]),
        "--bias_class", str(args.bias_class),
        "--slice_seconds", str(settings["slice_seconds"]),
        "--cf_warmup_epochs", str(settings["warmup"]),
        "--num_train_epochs", str(args.epochs or settings["epochs"]),
        "--learning_rate", str(settings["learning_rate"]),
        "--lr_scheduler_type", "constant",
        "--per_device_train_batch_size", str(settings["batch_size"]),
        "--per_device_eval_batch_size", str(2 * settings["batch_size"]),
        "--eval_strategy", "no",
        "--save_strategy", "epoch",
        "--save_total_limit", "1",
        "--logging_strategy", "epoch",
        "--report_to", "tensorboard",
        "--dataloader_pin_memory", "false",
        "--log_level", "error",
        "--disable_tqdm", "false",
        "--do_train", "--do_eval", "--do_predict",
    ]  # fmt: skip
    if args.data_dir:
        argv += ["--data_dir", args.data_dir]
    if settings["config_overrides"]:
        argv += ["--config_overrides", settings["config_overrides"]]
    return argv


# The rows of the demo's table: (label, metric of all_results.json). Every song row uses one decision rule: the plain
# majority vote of the song's slices (no threshold); frame rows use each slice's arg-max.
TABLE_ROWS = (
    ("frame F1, clean test", "test_frame_f1"),
    ("frame F1, noise on all", "test_noisy_frame_f1"),
    ("song F1, clean test", "test_song_f1"),
    ("song F1, noise on all", "test_noisy_song_f1"),
    ("shortcut gap, frame F1 (clean − noisy)", "shortcut_frame_f1_gap"),
    ("shortcut gap, song F1 (clean − noisy)", "shortcut_song_f1_gap"),
    ("biased class recognised, clean test", "test_song_bias_recall"),
    ("biased class recognised, noise on all", "test_noisy_song_bias_recall"),
    ("noisy songs of other classes → biased", "test_noisy_song_biased_rate"),
    ("clean songs of other classes → biased", "test_song_biased_rate"),
    ("training time per run (s)", "train_runtime"),
)
DECISION_RULE = (
    "Every song row uses the plain majority vote of the song's slices (no threshold), every frame row each slice's "
    "arg-max, in both columns."
)


def format_table(summary: dict, bias_class: int) -> str:
    """Mean ± standard deviation over the seeds of each row, plain vs LCA."""
    seeds = summary["seeds"]
    lines = [
        f"{'':<42}{'CRNN_FGNL':>16}{'+ LCA':>16}    (mean ± std over seeds {seeds}; biased class {bias_class})",
        "-" * 74,
    ]
    for label, key in TABLE_ROWS:
        cells = []
        for name in ("plain", "lca"):
            metric = summary["variants"][name]["metrics"].get(key)
            if metric is None:
                cells.append(f"{'–':>16}")
            elif key == "train_runtime":
                cells.append(f"{metric['mean']:>16.0f}")
            else:
                cells.append(f"{metric['mean']:>9.3f} ± {metric['std']:.3f}")
        lines.append(f"{label:<42}" + "".join(cells))
    return "\n".join(lines)


def reading(summary: dict) -> str:
    """The one or two sentences the demo ends with, computed from the paired comparisons."""
    from .training.experiments import comparison_sentence

    first = comparison_sentence(summary, "lca", "shortcut_song_f1_gap", "shortcut gap (song F1)")
    second = comparison_sentence(
        summary, "lca", "test_noisy_song_biased_rate", "noisy songs pulled to the biased class"
    )
    return f"On this benchmark, {first} {second}"


def main(argv=None) -> dict:
    from .training.experiments import run_all

    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    seeds = [int(seed) for seed in args.seeds.split(",")]
    os.makedirs(args.output_dir, exist_ok=True)
    variants = {
        "plain": {"counterfactual": "none"},
        "lca": {"counterfactual": "learned", **{f"lambda_{t}": getattr(args, f"lambda_{t}") for t in DEMO_LCA_WEIGHTS}},
    }
    start = time.time()
    # The script's logs and metric dumps go to a file; the progress bars (stderr) and the sweep's lines stay visible.
    with open(os.path.join(args.output_dir, "training_log.txt"), "a") as log:
        with contextlib.redirect_stdout(log):
            summary = run_all(
                args.output_dir,
                variants,
                seeds,
                base_arguments(settings, args),
                log=lambda m: print(m, file=sys.stderr),
            )
    total = time.time() - start
    table = format_table(summary, args.bias_class)
    sentence = reading(summary)
    outputs = [
        f"Total time: {total:.0f} s ({'quick' if args.quick else 'full'} demo, {len(seeds)} seeds × 2 runs; finished "
        "runs of an earlier demo with the same settings are reused). Outputs:",
        f"  the sweep's summary: {os.path.abspath(os.path.join(args.output_dir, 'summary.md'))} (+ summary.json, .png)",
        f"  logs: {os.path.abspath(os.path.join(args.output_dir, 'training_log.txt'))}",
    ]
    for name in ("plain", "lca"):
        folder = os.path.abspath(os.path.join(args.output_dir, name, f"seed{seeds[0]}"))
        outputs.append(f"  {name}: models {os.path.dirname(folder)}/seed*/ (pipeline-ready), e.g. {folder}")
        outputs.append("        confusion matrices, checkpoints, TensorBoard logs (runs/) in each seed folder")
    text = "\n".join([table, "", DECISION_RULE, "", sentence, "", *outputs])
    print("\n" + text)
    with open(os.path.join(args.output_dir, "summary.md"), "a", encoding="utf-8") as handle:
        handle.write("\n## The demo\n\n```\n" + table + "\n```\n\n" + DECISION_RULE + "\n\n" + sentence + "\n")
    result = {"summary": summary, "table": table, "sentence": sentence, "total_seconds": total}
    with open(os.path.join(args.output_dir, "demo_results.json"), "w") as handle:
        json.dump(result, handle, indent=1, default=str)
    return result
