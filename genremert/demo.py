"""The main job: where does the attention go, and does LCA move it? The quick version of the ground-truth attention
study (`genremert.training.attention_study`): the GenreMERT head trained plain, with LCA, and with its attention fixed
to the discriminative frames (the oracle: the ceiling), on frames whose roles are known, for both bias structures.

    python demo.py                 # 2 bias structures × 3 arms × 8 seeds, about 1.5 minutes on 2 idle CPU cores
    python demo.py --quick         # 2 seeds and smaller sets: seconds, in outputs/demo_quick
    python demo.py --audio         # the audio shortcut demo of CRNN_FGNL (genremert.audio_demo; --audio --quick too)

It prints, per bias structure and arm, the accuracy on the three test splits (in-distribution: the shortcut holds as
in training; decorrelated: the shortcut is noise; anti-correlated: it misleads) and where the main and the
counterfactual attention sit (mass on the discriminative and on the spurious frames), then sentences computed from the
paired comparisons (LCA − plain and oracle − plain, same seed; 95 % t-interval, paired t-test), and draws the masses
(`attention_mass.png`). Everything lands under `--output_dir` (a run folder per structure / arm / seed, with
`all_results.json`, `history.json` and TensorBoard logs; `summary.md/json` per structure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


ARMS = ("plain", "lca", "oracle")
STRUCTURES = ("shared", "exclusive")
# (label, metric, which direction is better)
TABLE_ROWS = (
    ("accuracy, in-distribution test", "in_distribution_accuracy", "higher"),
    ("accuracy, decorrelated test", "decorrelated_accuracy", "higher"),
    ("accuracy, anti-correlated test", "anti_correlated_accuracy", "higher"),
    ("main attention on discriminative frames", "decorrelated_main_mass_discriminative", "higher"),
    ("main attention on spurious frames", "decorrelated_main_mass_spurious", "lower"),
    ("counterfactual attention on discriminative", "decorrelated_cf_mass_discriminative", "—"),
    ("counterfactual attention on spurious", "decorrelated_cf_mass_spurious", "—"),
    ("counterfactual branch accuracy", "decorrelated_cf_accuracy", "—"),
)
# The demo's runs: the study's model and data with 1,600 training examples, 8 epochs and 1,000 test examples per split
# (the full study: 2,000, 15 and 2,000); --quick: smaller still.
DEMO_FLAGS = ["--num_train", "1600", "--num_validation", "500", "--num_test", "1000", "--num_train_epochs", "8"]
QUICK_FLAGS = ["--num_train", "800", "--num_validation", "400", "--num_test", "800", "--num_train_epochs", "8"]


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds and smaller sets: seconds")
    parser.add_argument("--output_dir", default=None, help="default: outputs/demo (outputs/demo_quick with --quick)")
    parser.add_argument("--seeds", default=None, help="training seeds (default 0–7; --quick: 0,1)")
    parser.add_argument("--rho", type=float, default=0.9, help="P(shortcut agrees with the class) in training")
    args = parser.parse_args(argv)
    if args.output_dir is None:
        args.output_dir = "outputs/demo_quick" if args.quick else "outputs/demo"
    try:
        args.seeds = [int(seed) for seed in (args.seeds or ("0,1" if args.quick else "0,1,2,3,4,5,6,7")).split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}.")
    if len(args.seeds) != len(set(args.seeds)) or not args.seeds:
        parser.error(f"--seeds must name distinct seeds, got {args.seeds}.")
    return args


def format_table(summaries: dict) -> str:
    """Mean ± std over the seeds, per structure and arm, with the direction of better."""
    lines = []
    for structure, summary in summaries.items():
        lines.append(f"bias {structure} (mean ± std over seeds {summary['seeds']})")
        lines.append(f"{'':<44}{'better':>8}" + "".join(f"{arm:>16}" for arm in ARMS))
        lines.append("-" * (52 + 16 * len(ARMS)))
        for label, metric, better in TABLE_ROWS:
            cells = []
            for arm in ARMS:
                data = summary["variants"].get(arm, {}).get("metrics", {}).get(metric)
                cells.append(f"{'–':>16}" if data is None else f"{data['mean']:>9.3f} ± {data['std']:.3f}")
            lines.append(f"{label:<44}{better:>8}" + "".join(cells))
        lines.append("")
    return "\n".join(lines)


def reading(summaries: dict) -> list[str]:
    """The sentences, computed from the paired comparisons (never written in advance)."""
    from .training.experiments import comparison_sentence

    sentences = []
    for structure, summary in summaries.items():
        sentences.append(f"bias {structure}:")
        for arm, metric, label in (
            ("oracle", "decorrelated_accuracy", "decorrelated accuracy (the room an attention has)"),
            ("lca", "decorrelated_accuracy", "decorrelated accuracy"),
            ("lca", "decorrelated_main_mass_discriminative", "main attention on discriminative frames"),
        ):
            sentences.append("  " + comparison_sentence(summary, arm, metric, label))
    return sentences


def plot_masses(summaries: dict, path: str) -> str:
    """Stacked bars: the mass of the main (and counterfactual) attention on each role, per arm and structure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles = (("discriminative", "tab:green"), ("spurious", "tab:red"), ("filler", "tab:grey"))
    figure, axes = plt.subplots(1, len(summaries), figsize=(6 * len(summaries), 4), squeeze=False)
    for axis, (structure, summary) in zip(axes[0], summaries.items()):
        bars = [(arm, "main") for arm in ARMS] + [("lca", "cf")]
        for position, (arm, branch) in enumerate(bars):
            bottom = 0.0
            metrics = summary["variants"].get(arm, {}).get("metrics", {})
            for role, colour in roles:
                value = metrics.get(f"decorrelated_{branch}_mass_{role}", {}).get("mean", 0.0)
                axis.bar(position, value, bottom=bottom, color=colour, label=role if position == 0 else None)
                bottom += value
        axis.set_xticks(range(len(bars)), [f"{arm}\n{'counterfactual' if b == 'cf' else 'main'}" for arm, b in bars])
        axis.set_ylim(0, 1)
        axis.set_ylabel("attention mass (decorrelated test, mean over seeds)")
        axis.set_title(f"bias {structure}")
        axis.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--audio" in argv:
        from .audio_demo import main as audio_main

        argv.remove("--audio")
        return audio_main(argv)
    from .training import attention_study
    from .training.experiments import run_all, write_summary

    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    variants = {arm: attention_study.ATTENTION_VARIANTS[arm] for arm in ARMS}
    total_runs = len(STRUCTURES) * len(ARMS) * len(args.seeds)
    done, start = [0], time.time()

    def runner(run_argv):  # one overall progress line per run: k of n, time left
        done[0] += 1
        elapsed = time.time() - start
        left = "" if done[0] == 1 else f", about {elapsed / (done[0] - 1) * (total_runs - done[0] + 1):.0f} s left"
        print(f"run {done[0]} of {total_runs}{left}", file=sys.stderr, flush=True)
        return attention_study.train(attention_study.parse_arguments(run_argv), log=lambda message: None)

    summaries = {}
    for structure in STRUCTURES:
        base = ["--bias_structure", structure, "--rho", str(args.rho)] + (QUICK_FLAGS if args.quick else DEMO_FLAGS)
        folder = os.path.join(args.output_dir, structure)
        summaries[structure] = run_all(folder, variants, args.seeds, base, runner=runner, log=lambda message: None)
        write_summary(folder, summaries[structure])
    total = time.time() - start
    table = format_table(summaries)
    sentences = reading(summaries)
    picture = plot_masses(summaries, os.path.join(args.output_dir, "attention_mass.png"))
    text = "\n".join(
        [
            "",
            table,
            "Arms: plain = GenreMERT's head with an attention that reads the frames; lca = the same with LCA (reference "
            "weights, 3-epoch warm-up); oracle = its attention fixed to the discriminative frames. Test splits: the "
            f"shortcut agrees with the class as in training (ρ = {args.rho}), is independent of it (decorrelated), or "
            "never agrees (anti-correlated). Chance accuracy is 0.25.",
            "",
            *sentences,
            "",
            f"Total time {total:.0f} s for {total_runs} runs (finished runs of an earlier demo are reused). Picture: "
            f"{os.path.abspath(picture)}; per-structure summaries: {os.path.abspath(args.output_dir)}/*/summary.md",
        ]
    )
    print(text)
    result = {"summaries": summaries, "table": table, "sentences": sentences, "total_seconds": total}
    with open(os.path.join(args.output_dir, "demo_results.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    return result
