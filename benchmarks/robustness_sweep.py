#!/usr/bin/env python
"""Robustness curves of a sweep's runs (`run_experiments.py`'s OUT/<variant>/seed<k>/ folders): each run attacked and
corrupted on its own test slices, then per variant the mean over seeds with a 95 % t-interval at every SNR, and the
paired difference variant − baseline. Prints a markdown table and writes robustness_sweep.json.

    python benchmarks/robustness_sweep.py --sweep outputs/evidence/crnn_time_bursts --variants plain,lca --seeds 0,1,2
"""

import argparse
import json
import os
import sys
from pathlib import Path


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from genremert import robustness_curves  # noqa: E402
from genremert.analysis.cli import _load_slices, fill_from_run_arguments, load_model  # noqa: E402
from genremert.training.experiments import describe, paired_comparison, t_half_width  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", required=True)
    parser.add_argument("--variants", default="plain,lca")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--snr_db", type=float, nargs="+", default=[40.0, 30.0, 20.0, 10.0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--metric", default="frame_accuracy")
    args = parser.parse_args()
    variants, seeds = args.variants.split(","), [int(s) for s in args.seeds.split(",")]
    curves = {}
    for variant in variants:
        for seed in seeds:
            folder = Path(args.sweep) / variant / f"seed{seed}"
            loader = argparse.Namespace(model_dir=str(folder), dataset=None, data_dir=None, split=None,
                                        synthetic_options=None, bias_class=None, eval_split="test")  # fmt: skip
            fill_from_run_arguments(loader)
            model = load_model(folder)
            slices = _load_slices(loader, model)[0]
            result = robustness_curves({variant: model}, slices, args.snr_db, (), args.steps, progress=False,
                                       corruptions=("white_noise", "band_noise"))  # fmt: skip
            curves[(variant, seed)] = result[variant]
    table = {}
    lines = ["| perturbation | SNR (dB) | " + " | ".join(f"`{v}` {args.metric}" for v in variants)
             + f" | `{variants[-1]}` − `{variants[0]}` [95 % CI] |", "|---|---|" + "---|" * (len(variants) + 1)]  # fmt: skip
    for kind in ("pgd", "white_noise", "band_noise"):
        for snr in [str(s) for s in args.snr_db]:
            cells, values = [], {}
            for variant in variants:
                values[variant] = [curves[(variant, s)][kind][snr][args.metric] for s in seeds]
                cells.append(f"{describe(values[variant])['mean']:.3f} ± {t_half_width(values[variant]):.3f}")
            comparison = paired_comparison(values[variants[-1]], values[variants[0]])
            interval = (
                "–" if comparison["ci_low"] is None else f"[{comparison['ci_low']:+.3f}, {comparison['ci_high']:+.3f}]"
            )
            lines.append(
                f"| {kind} | {snr} | " + " | ".join(cells) + f" | {comparison['difference']:+.3f} {interval} |"
            )
            table[f"{kind}@{snr}"] = {"values": values, "comparison": comparison}
    clean = {v: [curves[(v, s)]["clean"][args.metric] for s in seeds] for v in variants}
    print(f"clean {args.metric}: " + ", ".join(f"{v} {sum(x) / len(x):.3f}" for v, x in clean.items()))
    print("\n".join(lines))
    Path(args.sweep, "robustness_sweep.json").write_text(json.dumps({"clean": clean, "curves": table}, indent=1))


if __name__ == "__main__":
    main()
