"""Multi-seed ablations with paired statistics: does LCA (or CAL, or one loss term) help, compared with the plain model?

`run_experiments.py` runs `run_classification.py` once per (variant, seed), one sub-folder each
(`OUT/<variant>/seed<k>/`), skips finished runs, resumes interrupted ones from their last good checkpoint, and writes

- `OUT/summary.json`: `{"baseline", "seeds", "variants": {NAME: {"runs": {SEED: {metric: value}}, "metrics": {METRIC:
  {"mean", "std", "best", "values"}}}}, "comparisons": {NAME: {METRIC: {"difference", "ci_low", "ci_high", "p_value",
  "n"}}}}` for every numeric metric of the runs' `all_results.json`;
- `OUT/summary.md`: the paper-style table (Avg. / Best per variant, frame and song level) and the comparisons;
- `OUT/summary.png`: each variant's mean with its 95 % interval for the headline metrics.

A comparison is the paired difference variant − baseline over the seeds both ran (the same seed gives both the same
initial data order and split), with a 95 % Student-t confidence interval of the mean difference and the two-sided
paired t-test (`scipy.stats.ttest_rel`). With one seed there is no interval and no p-value (`None`).
"""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path

import numpy as np

from .sweep_arguments import (  # noqa: F401 - part of this module's API
    SWEEP_FLAGS,
    VARIANT_NAME,
    check_variant_name,
    check_variants,
    parse_seeds,
    read_variants_file,
    run_argv,
)


# The paper's rows (Table 1 and 2) as flags of run_classification.py; the preset's own LCA weights are kept otherwise.
BUILTIN_VARIANTS = {
    "plain": {"counterfactual": "none"},
    "cal": {"counterfactual": "random", "lambda_ent_main": 0.0},
    "lca_ce_cf": {"counterfactual": "learned", "lambda_ent_cf": 0.0, "lambda_ent_main": 0.0, "lambda_att": 0.0},
    "lca_entropies": {"counterfactual": "learned", "lambda_att": 0.0},
    "lca": {"counterfactual": "learned"},
    "lca_no_two_step": {"counterfactual": "learned", "cf_warmup_epochs": 0},
}
HEADLINE_METRICS = (
    "test_frame_f1",
    "test_song_f1",
    "test_song_accuracy",
    "test_noisy_song_f1",
    "shortcut_song_f1_gap",
    "test_noisy_song_biased_rate",
)
# The attention study's (`--benchmark attention`): accuracy per test split, where the main attention sits.
ATTENTION_HEADLINE_METRICS = (
    "decorrelated_accuracy",
    "in_distribution_accuracy",
    "anti_correlated_accuracy",
    "decorrelated_main_mass_discriminative",
    "decorrelated_main_mass_spurious",
    "decorrelated_cf_mass_spurious",
)
MARKER = "experiment.json"  # written last in a run's folder: the run is complete
# Metrics where lower is better ("best" of the seeds is then the minimum).
LOWER_IS_BETTER = ("loss", "gap", "biased_rate", "runtime", "per_second")


# A variant's name is the folder of its runs (OUT/<name>/seed<k>/): a plain name, never a path.
def load_variants(names: list[str], variants_file: str | None = None, builtin: dict | None = None) -> dict[str, dict]:
    """The flags of each named variant: the built-in ones (`builtin`, default the audio sweep's), or those of
    `variants_file` (`{name: {flag: value}}`). Every name must be a plain folder name (`check_variant_name`)."""
    available = dict(BUILTIN_VARIANTS if builtin is None else builtin)
    if variants_file is not None:
        available.update(read_variants_file(variants_file))
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"--variants: unknown variant(s) {unknown}; known: {sorted(available)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"--variants names a variant twice: {names}.")
    for name in names:
        check_variant_name(name, "--variants")
    return {name: dict(available[name]) for name in names}


def is_complete(run_dir: str) -> bool:
    """A run is complete when its marker and a readable `all_results.json` are there."""
    try:
        with open(os.path.join(run_dir, "all_results.json"), encoding="utf-8") as handle:
            results = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return False
    return os.path.isfile(os.path.join(run_dir, MARKER)) and isinstance(results, dict)


def _marker(run_dir: str) -> dict:
    try:
        with open(os.path.join(run_dir, MARKER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError):
        return {}


def resume_flags(run_dir: str) -> list[str]:
    """How an unfinished run's folder is reused: from its last good checkpoint, or from scratch."""
    from .run_folder import last_complete_checkpoint

    try:
        checkpoint = last_complete_checkpoint(run_dir)
    except ValueError:  # checkpoints, none of them good: start again
        checkpoint = None
    if checkpoint is not None:
        return ["--resume_from_checkpoint", "last"]
    return ["--overwrite_output_dir", "true"] if os.path.isdir(run_dir) else []


def run_all(
    output_dir: str,
    variants: dict[str, dict],
    seeds: list[int],
    base_args: list[str],
    runner=None,
    log=print,
    baseline: str | None = None,
) -> dict:
    """Runs every (variant, seed) not yet complete; returns the summary (also written to `output_dir`).

    `runner(argv)` trains one run (default: `genremert.training.main`, in this process: under `accelerate launch`
    every process of the launch takes part in each run)."""
    if runner is None:
        from .run import main as runner
    for name in variants:
        check_variant_name(name, "run_all")
    repeated = sorted({seed for seed in seeds if list(seeds).count(seed) > 1})
    if repeated:
        raise ValueError(f"seeds {list(seeds)} repeat {repeated}: each seed is one run (folder seed<k>); give it once.")
    main_process = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0  # under `accelerate launch`
    os.makedirs(output_dir, exist_ok=True)
    for name, flags in variants.items():
        for seed in seeds:
            run_dir = os.path.join(output_dir, name, f"seed{seed}")
            argv = run_argv(base_args, flags, seed, run_dir)
            if is_complete(run_dir):
                if _marker(run_dir).get("run_argv", argv) == argv:
                    log(f"[{name} seed {seed}] complete: skipped ({run_dir})")
                    continue
                log(f"[{name} seed {seed}] finished with other arguments: run again")
                argv = argv + ["--overwrite_output_dir", "true"]
            else:
                argv = argv + resume_flags(run_dir)
            log(f"[{name} seed {seed}] {getattr(runner, '__module__', 'runner')} {shlex.join(argv)}")
            runner(argv)
            _wait_for_everyone()
            if main_process:
                run = run_argv(base_args, flags, seed, run_dir)
                marker = {"variant": name, "seed": seed, "flags": flags, "run_argv": run, "argv": argv}
                with open(os.path.join(run_dir, MARKER + ".tmp"), "w", encoding="utf-8") as handle:
                    json.dump(marker, handle, indent=2)
                os.replace(os.path.join(run_dir, MARKER + ".tmp"), os.path.join(run_dir, MARKER))
            _wait_for_everyone()
    summary = summarize(output_dir, list(variants), seeds, baseline)
    if main_process:
        write_summary(output_dir, summary)
    return summary


def _wait_for_everyone() -> None:
    """A barrier across the processes of a distributed launch (the runs initialise torch.distributed)."""
    import torch.distributed as distributed

    if distributed.is_available() and distributed.is_initialized():
        distributed.barrier()


# ----------------------------------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------------------------------


def _numeric(results: dict) -> dict:
    return {
        key: float(value)
        for key, value in results.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def describe(values: list[float], lower_is_better: bool = False) -> dict:
    """Mean, sample standard deviation (ddof 1; 0 for one value), best seed and the values."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "best": float(array.min() if lower_is_better else array.max()),
        "values": [float(value) for value in array],
    }


def t_half_width(values, confidence: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean of `values` (0 for fewer than two)."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return 0.0
    return (
        float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * float(values.std(ddof=1)) / math.sqrt(len(values))
    )


def paired_comparison(variant: list[float], baseline: list[float], confidence: float = 0.95) -> dict:
    """Mean paired difference variant − baseline, its Student-t confidence interval and the two-sided paired t-test
    p-value (`scipy.stats.ttest_rel`). Identical differences give a zero-width interval and p = 0 (or 1 when they are
    all zero); one pair gives no interval and no p-value."""
    from scipy import stats

    differences = np.asarray(variant, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    n = len(differences)
    mean = float(differences.mean()) if n else float("nan")
    result = {"difference": mean, "ci_low": None, "ci_high": None, "p_value": None, "n": n}
    if n < 2:
        return result
    if float(differences.std(ddof=1)) == 0.0:
        result.update(ci_low=mean, ci_high=mean, p_value=1.0 if mean == 0.0 else 0.0)
        return result
    half_width = t_half_width(differences, confidence)
    result.update(
        ci_low=mean - half_width,
        ci_high=mean + half_width,
        p_value=float(stats.ttest_rel(variant, baseline).pvalue),
    )
    return result


def summarize(output_dir: str, variant_names: list[str], seeds: list[int], baseline: str | None = None) -> dict:
    """The summary of the complete runs under `output_dir` (see the module docstring)."""
    baseline = baseline or ("plain" if "plain" in variant_names else variant_names[0])
    summary = {"baseline": baseline, "seeds": list(seeds), "variants": {}, "comparisons": {}}
    for name in variant_names:
        runs = {}
        for seed in seeds:
            run_dir = os.path.join(output_dir, name, f"seed{seed}")
            if is_complete(run_dir):
                with open(os.path.join(run_dir, "all_results.json"), encoding="utf-8") as handle:
                    runs[str(seed)] = _numeric(json.load(handle))
        metric_names = sorted({metric for run in runs.values() for metric in run})
        metrics = {}
        for metric in metric_names:
            values = [run[metric] for run in runs.values() if metric in run]
            metrics[metric] = describe(values, any(word in metric for word in LOWER_IS_BETTER))
        summary["variants"][name] = {"runs": runs, "metrics": metrics}
    base_runs = summary["variants"].get(baseline, {}).get("runs", {})
    for name in variant_names:
        if name == baseline:
            continue
        runs = summary["variants"][name]["runs"]
        shared = [seed for seed in runs if seed in base_runs]
        comparisons = {}
        for metric in sorted({metric for seed in shared for metric in runs[seed]}):
            pairs = [(runs[s][metric], base_runs[s][metric]) for s in shared if metric in base_runs[s]]
            if pairs:
                comparisons[metric] = paired_comparison([a for a, _ in pairs], [b for _, b in pairs])
        summary["comparisons"][name] = comparisons
    return summary


# ----------------------------------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------------------------------


def _cell(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def comparison_sentence(summary: dict, variant: str, metric: str, label: str | None = None) -> str:
    """One sentence computed from the numbers, e.g. "lca vs plain: test_song_f1 −0.030 (95 % CI −0.090 to +0.030,
    3 seeds, p = 0.40): no significant difference." Never written in advance."""
    comparison = summary["comparisons"].get(variant, {}).get(metric)
    name = label or metric
    if comparison is None:
        return f"{variant} vs {summary['baseline']}: no paired runs with {metric} to compare."
    difference, low, high, p, n = (comparison[key] for key in ("difference", "ci_low", "ci_high", "p_value", "n"))
    if low is None:
        return (
            f"{variant} vs {summary['baseline']}: {name} {difference:+.3f} from {n} seed; one seed gives no interval."
        )
    if low > 0:
        verdict = f"{variant} is higher (the interval excludes 0)"
    elif high < 0:
        verdict = f"{variant} is lower (the interval excludes 0)"
    else:
        verdict = "no significant difference"
    return (
        f"{variant} vs {summary['baseline']}: {name} {difference:+.3f} (95 % CI {low:+.3f} to {high:+.3f}, {n} seeds, "
        f"p = {p:.2g}): {verdict}."
    )


def headline_metrics(summary: dict) -> tuple[str, ...]:
    """The headline metrics of this sweep: the attention study's when its runs have them, else the audio sweep's."""
    have = {metric for data in summary["variants"].values() for metric in data["metrics"]}
    return ATTENTION_HEADLINE_METRICS if "decorrelated_accuracy" in have else HEADLINE_METRICS


def summary_markdown(summary: dict) -> str:
    lines = [
        f"# Sweep summary (baseline `{summary['baseline']}`, seeds {summary['seeds']})",
        "",
        "Avg. = mean over seeds ± sample standard deviation; Best = best seed (the paper's columns).",
        "",
    ]
    if headline_metrics(summary) == ATTENTION_HEADLINE_METRICS:
        columns = [(metric.replace("_", " "), metric, False) for metric in ATTENTION_HEADLINE_METRICS]
    else:
        columns = [
            ("frame F1 Avg.", "test_frame_f1", False),
            ("frame F1 Best", "test_frame_f1", True),
            ("song F1 Avg.", "test_song_f1", False),
            ("song F1 Best", "test_song_f1", True),
            ("song acc. Avg.", "test_song_accuracy", False),
        ]
    lines += [
        "| variant | runs | " + " | ".join(label for label, _, _ in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for name, data in summary["variants"].items():
        cells = []
        for _, metric, best in columns:
            m = data["metrics"].get(metric)
            cells.append("–" if m is None else f"{m['best']:.3f}" if best else f"{m['mean']:.3f} ± {m['std']:.3f}")
        lines.append(f"| `{name}` | {len(data['runs'])} | " + " | ".join(cells) + " |")
    headline = headline_metrics(summary)[0]
    widths = {
        name: t_half_width(data["metrics"][headline]["values"])
        for name, data in summary["variants"].items()
        if headline in data["metrics"]
    }
    if widths:  # how precisely each mean is known: the study's power target is a half-width ≤ 0.03
        lines += [
            "",
            f"95 % half-width of the mean `{headline}`: " + ", ".join(f"`{n}` {w:.3f}" for n, w in widths.items()),
        ]
    lines += [
        "",
        f"## Paired differences vs `{summary['baseline']}` (95 % t-interval, paired t-test)",
        "",
        "| variant | metric | difference | 95 % CI | p | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for name, comparisons in summary["comparisons"].items():
        for metric in headline_metrics(summary):
            if metric in comparisons:
                c = comparisons[metric]
                interval = "–" if c["ci_low"] is None else f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"
                lines.append(
                    f"| `{name}` | `{metric}` | {c['difference']:+.3f} | {interval} | {_cell(c['p_value'])} | {c['n']} |"
                )
    lines += [""]
    for name in summary["comparisons"]:
        for metric in headline_metrics(summary):
            if metric in summary["comparisons"][name]:
                lines.append("- " + comparison_sentence(summary, name, metric))
    return "\n".join(lines) + "\n"


def plot_summary(summary: dict, path) -> Path:
    """Each variant's mean and 95 % t-interval (over its seeds) for the headline metrics present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in headline_metrics(summary) if any(m in v["metrics"] for v in summary["variants"].values())]
    figure, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4 * max(1, len(metrics)), 4), squeeze=False)
    names = list(summary["variants"])
    for axis, metric in zip(axes[0], metrics):
        for position, name in enumerate(names):
            data = summary["variants"][name]["metrics"].get(metric)
            if data is None:
                continue
            n = len(data["values"])
            axis.errorbar(position, data["mean"], yerr=t_half_width(data["values"]), fmt="o", capsize=5)
            axis.scatter([position] * n, data["values"], s=10, alpha=0.5, color="grey")
        axis.set_xticks(range(len(names)), names, rotation=30)
        axis.set_title(metric)
    figure.suptitle(f"mean ± 95 % t-interval over seeds {summary['seeds']}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def write_summary(output_dir: str, summary: dict) -> None:
    """`summary.json`, `summary.md` and `summary.png` into `output_dir` (each written atomically)."""
    path = os.path.join(output_dir, "summary.json")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(path + ".tmp", path)
    path = os.path.join(output_dir, "summary.md")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(summary_markdown(summary))
    os.replace(path + ".tmp", path)
    plot_summary(summary, os.path.join(output_dir, "summary.png"))


def main(argv: list[str] | None = None) -> dict:
    """`run_experiments.py --variants plain,lca --seeds 0,1,2 --output_dir OUT -- <run_classification arguments>`."""
    import argparse
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    base_args = []
    if "--" in argv:
        split = argv.index("--")
        argv, base_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="run_experiments.py --variants plain,lca --seeds 0,1,2 --output_dir OUT -- [PRESET.json] [--flag v ...]",
    )
    parser.add_argument("--variants", default="plain,lca", help=f"Comma-separated; built in: {list(BUILTIN_VARIANTS)}.")
    parser.add_argument("--variants_file", default=None, help="JSON {name: {flag: value}} of more variants.")
    parser.add_argument(
        "--seeds",
        default=None,
        help="Comma-separated training seeds (the split does not move). Default: 0,1,2 (audio), 0–9 (attention).",
    )
    parser.add_argument("--output_dir", required=True, help="One sub-folder per run: OUT/<variant>/seed<k>/.")
    parser.add_argument("--baseline", default=None, help="Variant the others are compared with (default: plain).")
    parser.add_argument(
        "--benchmark",
        choices=("audio", "attention"),
        default="audio",
        help="audio: run_classification.py runs (the flags after `--` are its own); attention: the ground-truth "
        "attention study (genremert.training.attention_study; its flags after `--`), 10 seeds by default.",
    )
    parser.add_argument(
        "--search_lca_weights",
        type=int,
        default=0,
        metavar="BUDGET",
        help="attention: first choose LCA's λ's by random search (BUDGET runs on --search_seed, in-distribution "
        "validation only) and add the variant `lca_tuned`.",
    )
    parser.add_argument("--search_seed", type=int, default=1000, help="The search's training seed (not a study seed).")
    parser.add_argument(
        "--search_upper_bound",
        action="store_true",
        help="attention: also choose λ's on the decorrelated TEST split, as the labelled upper-bound variant "
        "`lca_tuned_on_test_upper_bound` (never a result).",
    )
    args = parser.parse_args(argv)
    for flag in ("--seed", "--output_dir"):
        if flag in base_args:
            parser.error(f"{flag} after `--` is set by the sweep for each run; remove it.")
    try:
        seeds = parse_seeds(args.seeds, [0, 1, 2] if args.benchmark == "audio" else list(range(10)))
    except ValueError as error:
        parser.error(str(error))
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    if not names:
        parser.error(f"--variants {args.variants!r} names no variant; expected e.g. plain,lca.")
    runner = None
    if args.benchmark == "attention":
        from . import attention_study

        builtin = attention_study.ATTENTION_VARIANTS
        searches = []
        if args.search_lca_weights:
            searches = [("lca_tuned", "eval")] + [("lca_tuned_on_test_upper_bound", "decorrelated")] * bool(
                args.search_upper_bound
            )
        searched = {name for name, _ in searches}
        if args.baseline is not None and args.baseline not in [*names, *sorted(searched)]:
            parser.error(f"--baseline {args.baseline!r} is not one of --variants {names}.")
        # The searched variants do not exist yet; every other one is checked before the search's runs.
        checked = load_variants([name for name in names if name not in searched], args.variants_file, builtin=builtin)
        check_variants(checked, base_args, args.output_dir, seeds, "attention", args.variants_file)
        tuned = attention_study.tuned_variants(
            searches, base_args, args.output_dir, args.search_lca_weights, args.search_seed
        )
        names += [name for name in tuned if name not in names]
        variants = load_variants(names, args.variants_file, builtin={**builtin, **tuned})
        runner = attention_study.main
    else:
        if args.baseline is not None and args.baseline not in names:
            parser.error(f"--baseline {args.baseline!r} is not one of --variants {names}.")
        variants = load_variants(names, args.variants_file)
        check_variants(variants, base_args, args.output_dir, seeds, "audio", args.variants_file)
    summary = run_all(args.output_dir, variants, seeds, base_args, runner=runner, baseline=args.baseline)
    print(summary_markdown(summary))
    return summary
