"""The summary of a sweep (`run_experiments.py`): the finished runs of `OUT/<variant>/seed<k>/` merged into

- `OUT/summary.json`: `{"baseline", "seeds", "variants": {NAME: {"runs": {SEED: {metric: value}}, "metrics": {METRIC:
  {"mean", "std", "best", "values"}}}}, "comparisons": {NAME: {METRIC: {"difference", "ci_low", "ci_high", "p_value",
  "n"}}}, "missing": [{"variant", "seed", "problem"}]}` for every numeric metric of the runs' `all_results.json`;
- `OUT/summary.md`: the paper-style table (Avg. / Best per variant, frame and song level) and the comparisons;
- `OUT/summary.png`: each variant's mean with its 95 % interval for the headline metrics.

A comparison is the paired difference variant − baseline over the seeds both ran (the same seed gives both the same
initial data order and split), with a 95 % Student-t confidence interval of the mean difference and the two-sided
paired t-test (`scipy.stats.ttest_rel`). With one seed there is no interval and no p-value (`None`).

The summary reads only the run folders, so it is the same whether one process ran every (variant, seed) or a job array
ran them in shards (`run_experiments.py --shard K/N`, then `--summarize_only`). `missing` lists the cells it could not
use (not run, unfinished, or finished with other arguments than the sweep's); an unsharded sweep's is empty.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


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


def run_folder(output_dir: str, variant: str, seed: int) -> str:
    """The folder of one (variant, seed) cell of the sweep."""
    return os.path.join(output_dir, variant, f"seed{seed}")


def is_complete(run_dir: str) -> bool:
    """A run is complete when its marker and a readable `all_results.json` are there."""
    try:
        with open(os.path.join(run_dir, "all_results.json"), encoding="utf-8") as handle:
            results = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return False
    return os.path.isfile(os.path.join(run_dir, MARKER)) and isinstance(results, dict)


def read_marker(run_dir: str) -> dict:
    """The run's `experiment.json` (variant, seed, flags, `run_argv`), or {} when it is absent or unreadable."""
    try:
        with open(os.path.join(run_dir, MARKER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError):
        return {}


def cell_problem(run_dir: str, expected_argv: list[str] | None = None) -> str | None:
    """Why the run in `run_dir` cannot be counted in the summary, or None when it can. With `expected_argv` (the
    sweep's `run_argv` of that cell), a run finished with other arguments is not counted either: the summary of one
    command line never mixes in runs of another."""
    if not os.path.isdir(run_dir):
        return "not run"
    if not is_complete(run_dir):
        return f"unfinished (no {MARKER} or all_results.json: still running, failed or killed)"
    if expected_argv is not None and read_marker(run_dir).get("run_argv", expected_argv) != expected_argv:
        return f"finished with other arguments (the run_argv of its {MARKER} is not this sweep's)"
    return None


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


def summarize(
    output_dir: str,
    variant_names: list[str],
    seeds: list[int],
    baseline: str | None = None,
    run_argvs: dict | None = None,
) -> dict:
    """The summary of the complete runs under `output_dir` (see the module docstring). `run_argvs` maps a cell
    `(variant, seed)` to the arguments the sweep gives its run: a run finished with others is listed in `missing`
    instead of being counted (`cell_problem`)."""
    baseline = baseline or ("plain" if "plain" in variant_names else variant_names[0])
    summary = {"baseline": baseline, "seeds": list(seeds), "variants": {}, "comparisons": {}, "missing": []}
    for name in variant_names:
        runs = {}
        for seed in seeds:
            run_dir = run_folder(output_dir, name, seed)
            problem = cell_problem(run_dir, (run_argvs or {}).get((name, seed)))
            if problem is not None:
                summary["missing"].append({"variant": name, "seed": seed, "problem": problem})
                continue
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


def missing_report(summary: dict) -> list[str]:
    """One line per cell the summary could not use: `` `lca` seed 1: not run``."""
    return [f"`{cell['variant']}` seed {cell['seed']}: {cell['problem']}" for cell in summary.get("missing", [])]


def summary_markdown(summary: dict) -> str:
    lines = [f"# Sweep summary (baseline `{summary['baseline']}`, seeds {summary['seeds']})", ""]
    missing = missing_report(summary)
    if missing:  # a partial summary (`--summarize_only --allow_missing`) says so before any number
        total = len(summary["variants"]) * len(summary["seeds"])
        lines += [f"**Partial summary: {len(missing)} of {total} runs missing**; the statistics use the others:", ""]
        lines += [f"- {line}" for line in missing] + [""]
    lines += ["Avg. = mean over seeds ± sample standard deviation; Best = best seed (the paper's columns).", ""]
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
    """`summary.json`, `summary.md` and `summary.png` into `output_dir`, each written to a temporary file of this
    process and renamed: a reader never sees half a file, and two writers never share a temporary file."""
    temporary = f".{os.getpid()}.tmp"
    path = os.path.join(output_dir, "summary.json")
    with open(path + temporary, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(path + temporary, path)
    path = os.path.join(output_dir, "summary.md")
    with open(path + temporary, "w", encoding="utf-8") as handle:
        handle.write(summary_markdown(summary))
    os.replace(path + temporary, path)
    path = os.path.join(output_dir, "summary.png")
    plot_summary(summary, path + temporary + ".png")
    os.replace(path + temporary + ".png", path)
