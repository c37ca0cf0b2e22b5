"""The shortcut demo: CRNN_FGNL trained plain and with LCA on the synthetic singer set whose training songs of one
class carry band noise (paper Fig. 1), then tested on clean songs and on songs with the noise added to every class.

    python demo.py            # both runs on CPU (measured times: docs/training.md)
    python demo.py --quick    # a smoke version (a smaller model, fewer songs), in outputs/demo_quick

A model that learned the shortcut "noise → the biased class" shows it two ways: it recognises the biased class
only when the noise is there (its recall rises from `test` to `test_noisy`), and it gives the biased class to noisy
songs of other classes. The demo prints, side by side for the two runs: frame- and song-level F1 on `test` and
`test_noisy`, the shortcut gap (clean − noisy F1: positive when the noise pulls songs of other classes to the
biased class, negative when it *helps*, i.e. when the biased class is recognised by its noise), the biased class's
recall on both test sets, and how often noisy songs / slices of the other classes are given the biased class. Both
trainings go through `run_classification.main` (the same code as the training script); every output (model folders,
checkpoints, confusion matrices, TensorBoard logs, all_results.json) lands under `--output_dir`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time

from . import training as run_classification


# The default-size CRNN_FGNL (≈ 0.58 M parameters) on 3 s slices (the paper's shortest), sized to fit the time stated in
# docs/training.md on an idle 2-core CPU (both runs). Five albums per class: 1 test, 1 validation and 3 training albums, so the model sees
# three accompaniment styles (fixed per album) per singer instead of one. 6 songs of 9 s per album
# (3 slices each): 72 training songs (216 slices per epoch) and 24 songs in each test set. The plain model's training
# loss flattens after 5–6 epochs at this size; 7 epochs, LCA switched on after a 2-epoch warm-up.
FULL = {
    "synthetic": {
        "num_classes": 4,
        "albums_per_class": 5,
        "songs_per_album": 6,
        "song_seconds": 9.0,
    },
    "slice_seconds": 3.0,
    "epochs": 7,
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
    parser.add_argument("--seed", type=int, default=0)
    for name, value in DEMO_LCA_WEIGHTS.items():
        parser.add_argument(
            f"--lambda_{name}",
            type=float,
            default=value,
            help=f"LCA weight (default {value})",
        )
    args = parser.parse_args(argv)
    if args.output_dir is None:
        args.output_dir = "outputs/demo_quick" if args.quick else "outputs/demo"
    return args


def biased_class_rate(matrix: list[list[int]], bias_class: int) -> float:
    """Share of the items of the *other* classes predicted as `bias_class` (rows: true class, columns: predicted)."""
    others = [row for label, row in enumerate(matrix) if label != bias_class]
    total = sum(sum(row) for row in others)
    return sum(row[bias_class] for row in others) / total if total else float("nan")


def class_recall(matrix: list[list[int]], label: int) -> float:
    """Share of the items of class `label` predicted as `label`."""
    total = sum(matrix[label])
    return matrix[label][label] / total if total else float("nan")


def run_one(name: str, counterfactual: str, settings: dict, args: argparse.Namespace, log) -> dict:
    """One training run through run_classification.main; returns its results plus the shortcut figures."""
    output_dir = os.path.join(args.output_dir, name)
    argv = [
        "--model_type",
        "crnn_fgnl",
        "--dataset",
        "synthetic",
        "--synthetic_options",
        json.dumps(settings["synthetic"]),
        "--bias_class",
        str(args.bias_class),
        "--slice_seconds",
        str(settings["slice_seconds"]),
        "--counterfactual",
        counterfactual,
        "--cf_warmup_epochs",
        str(settings["warmup"]),
        "--num_train_epochs",
        str(args.epochs or settings["epochs"]),
        "--learning_rate",
        str(settings["learning_rate"]),
        "--lr_scheduler_type",
        "constant",
        "--per_device_train_batch_size",
        str(settings["batch_size"]),
        "--per_device_eval_batch_size",
        str(2 * settings["batch_size"]),
        "--seed",
        str(args.seed),
        "--eval_strategy",
        "no",
        "--save_strategy",
        "epoch",
        "--save_total_limit",
        "1",
        "--logging_strategy",
        "epoch",
        "--report_to",
        "tensorboard",
        "--dataloader_pin_memory",
        "false",
        "--log_level",
        "error",
        "--disable_tqdm",
        "false",
        "--output_dir",
        output_dir,
        "--overwrite_output_dir",  # a new demo replaces the previous demo's runs in its own folder
        "true",
        "--do_train",
        "--do_eval",
        "--do_predict",
    ]
    if counterfactual != "none":
        for term in DEMO_LCA_WEIGHTS:
            argv += [f"--lambda_{term}", str(getattr(args, f"lambda_{term}"))]
    if args.data_dir:
        argv += ["--data_dir", args.data_dir]
    if settings["config_overrides"]:
        argv += ["--config_overrides", settings["config_overrides"]]
    print(
        f"\n=== {name}: CRNN_FGNL, counterfactual={counterfactual} → {output_dir}",
        flush=True,
    )
    start = time.time()
    # The script's logs and metric dumps go to a file; the progress bars (stderr) stay on the terminal.
    with contextlib.redirect_stdout(log):
        results = run_classification.main(argv)
    results["wall_seconds"] = time.time() - start
    for split in ("test", "test_noisy"):
        for level in ("frame", "song"):
            with open(os.path.join(output_dir, f"confusion_matrix_{split}_{level}.json")) as handle:
                matrix = json.load(handle)["matrix"]
            results[f"{split}_{level}_biased_rate"] = biased_class_rate(matrix, args.bias_class)
            results[f"{split}_{level}_biased_recall"] = class_recall(matrix, args.bias_class)
    return results


def format_table(plain: dict, lca: dict, bias_class: int) -> str:
    rows = [
        ("frame F1, clean test", "test_frame_f1"),
        ("frame F1, noise on all", "test_noisy_frame_f1"),
        ("song F1, clean test", "test_song_f1"),
        ("song F1, noise on all", "test_noisy_song_f1"),
        ("shortcut gap, frame F1", None),
        ("shortcut gap, song F1", None),
        (f"class {bias_class} songs recognised, clean test", "test_song_biased_recall"),
        (
            f"class {bias_class} songs recognised, noise on all",
            "test_noisy_song_biased_recall",
        ),
        (
            f"noisy songs of other classes → class {bias_class}",
            "test_noisy_song_biased_rate",
        ),
        (
            f"noisy slices of other classes → class {bias_class}",
            "test_noisy_frame_biased_rate",
        ),
        (f"clean songs of other classes → class {bias_class}", "test_song_biased_rate"),
        ("training time (s)", "wall_seconds"),
    ]
    lines = [f"{'':<44}{'CRNN_FGNL':>12}{'+ LCA':>12}", "-" * 68]
    for label, key in rows:
        if key is None:
            level = "frame" if "frame" in label else "song"
            values = [r[f"test_{level}_f1"] - r[f"test_noisy_{level}_f1"] for r in (plain, lca)]
        else:
            values = [plain[key], lca[key]]
        fmt = "{:>12.0f}" if key == "wall_seconds" else "{:>12.3f}"
        lines.append(f"{label:<44}" + "".join(fmt.format(v) for v in values))
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    os.makedirs(args.output_dir, exist_ok=True)
    start = time.time()
    # One log file for both runs (the logging handler keeps the stream it was created with).
    with open(os.path.join(args.output_dir, "training_log.txt"), "w") as log:
        plain = run_one("plain", "none", settings, args, log)
        lca = run_one("lca", "learned", settings, args, log)
    table = format_table(plain, lca, args.bias_class)
    total = time.time() - start
    print("\n" + table)
    print(f"\nTotal time: {total:.0f} s ({'quick' if args.quick else 'full'} demo). Outputs:")
    print(f"  logs of both runs: {os.path.abspath(os.path.join(args.output_dir, 'training_log.txt'))}")
    for name in ("plain", "lca"):
        folder = os.path.abspath(os.path.join(args.output_dir, name))
        print(f"  {name}: model {folder}  (pipeline('audio-classification', model=..., trust_remote_code=True))")
        print(f"        confusion matrices {folder}/confusion_matrix_{{test,test_noisy}}_{{frame,song}}.png")
        print(f"        checkpoints {folder}/checkpoint-*, TensorBoard: tensorboard --logdir {folder}/runs")
    summary = {"plain": plain, "lca": lca, "table": table, "total_seconds": total}
    with open(os.path.join(args.output_dir, "demo_results.json"), "w") as handle:
        json.dump(summary, handle, indent=1, default=str)
    return summary
