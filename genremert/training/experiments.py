"""Multi-seed ablations with paired statistics: does LCA (or CAL, or one loss term) help, compared with the plain model?

`run_experiments.py` runs `run_classification.py` (or, with `--benchmark attention`, the ground-truth attention study)
once per (variant, seed) cell, one sub-folder each (`OUT/<variant>/seed<k>/`), skips finished runs, resumes
interrupted ones from their last good checkpoint, and writes `OUT/summary.json`, `summary.md` and `summary.png`: each
variant's Avg. / Best and its paired difference to the baseline (`genremert.training.sweep_summary`).

A sweep fans out over a job array or several machines with `--shard K/N`: the cells in their fixed variant-major order
(`sweep_arguments.sweep_cells`), shard K runs those at positions K-1, K-1+N, ... (`shard_cells`) and writes no summary;
`--summarize_only` then merges the finished cells into the same summary an unsharded sweep writes, and refuses (exit
status 1, naming every missing cell) while any cell is missing, unless `--allow_missing` (then the summary says it is
partial). Every cell has its own folder and a shard writes nothing else, so the N shards may share one OUT.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from .sweep_arguments import (  # noqa: F401 - part of this module's API
    SWEEP_FLAGS,
    VARIANT_NAME,
    check_variant_name,
    check_variants,
    parse_seeds,
    parse_shard,
    read_variants_file,
    run_argv,
    shard_cells,
    sweep_cells,
)
from .sweep_summary import (  # noqa: F401 - part of this module's API (the summary lived here first)
    ATTENTION_HEADLINE_METRICS,
    HEADLINE_METRICS,
    LOWER_IS_BETTER,
    MARKER,
    comparison_sentence,
    describe,
    headline_metrics,
    is_complete,
    missing_report,
    paired_comparison,
    plot_summary,
    read_marker,
    run_folder,
    summarize,
    summary_markdown,
    t_half_width,
    write_summary,
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


def sweep_run_argvs(output_dir: str, variants: dict[str, dict], seeds: list[int], base_args: list[str]) -> dict:
    """`{(variant, seed): the run's arguments}` for every cell: what a finished run's marker must record to count."""
    return {
        (name, seed): run_argv(base_args, variants[name], seed, run_folder(output_dir, name, seed))
        for name, seed in sweep_cells(list(variants), seeds)
    }


def run_all(
    output_dir: str,
    variants: dict[str, dict],
    seeds: list[int],
    base_args: list[str],
    runner=None,
    log=print,
    baseline: str | None = None,
    shard: tuple[int, int] | None = None,
) -> dict:
    """Runs every (variant, seed) not yet complete; returns the summary (also written to `output_dir`).

    `runner(argv)` trains one run (default: `genremert.training.main`, in this process: under `accelerate launch`
    every process of the launch takes part in each run). With `shard=(K, N)` only shard K's cells run
    (`shard_cells`) and no summary is written (the N shards may run at once: `summary.*` is `--summarize_only`'s);
    the summary returned then lists the cells not finished yet in `missing`."""
    if runner is None:
        from .run import main as runner
    for name in variants:
        check_variant_name(name, "run_all")
    repeated = sorted({seed for seed in seeds if list(seeds).count(seed) > 1})
    if repeated:
        raise ValueError(f"seeds {list(seeds)} repeat {repeated}: each seed is one run (folder seed<k>); give it once.")
    main_process = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0  # under `accelerate launch`
    os.makedirs(output_dir, exist_ok=True)
    run_argvs = sweep_run_argvs(output_dir, variants, seeds, base_args)
    cells = shard_cells(list(run_argvs), shard)
    if shard is not None:
        listed = ", ".join(f"{name} seed {seed}" for name, seed in cells) or "none"
        log(f"[shard {shard[0]}/{shard[1]}] {len(cells)} of the sweep's {len(run_argvs)} runs: {listed}")
    for name, seed in cells:
        flags, run_dir = variants[name], run_folder(output_dir, name, seed)
        argv = run_argvs[(name, seed)]
        if is_complete(run_dir):
            if read_marker(run_dir).get("run_argv", argv) == argv:
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
            run = run_argvs[(name, seed)]
            marker = {"variant": name, "seed": seed, "flags": flags, "run_argv": run, "argv": argv}
            with open(os.path.join(run_dir, MARKER + ".tmp"), "w", encoding="utf-8") as handle:
                json.dump(marker, handle, indent=2)
            os.replace(os.path.join(run_dir, MARKER + ".tmp"), os.path.join(run_dir, MARKER))
        _wait_for_everyone()
    summary = summarize(output_dir, list(variants), seeds, baseline, run_argvs)
    if main_process and shard is None:
        write_summary(output_dir, summary)
    return summary


def _wait_for_everyone() -> None:
    """A barrier across the processes of a distributed launch (the runs initialise torch.distributed)."""
    import torch.distributed as distributed

    if distributed.is_available() and distributed.is_initialized():
        distributed.barrier()


def finished_searches(searches, output_dir: str, budget: int, search_seed: int) -> dict:
    """The tuned variants of λ searches that already ran into `output_dir/search_<name>/` with this budget and search
    seed (`--search_only`), without running them again: the flags `attention_study.tuned_variants` gives them. A
    shard never runs the search itself: N shards would each run it into the same folder."""
    variants = {}
    for name, _ in searches:
        folder = os.path.join(output_dir, f"search_{name}")
        chosen = os.path.join(folder, "chosen_weights.json")
        try:
            with open(os.path.join(folder, "search.json"), encoding="utf-8") as handle:
                report = json.load(handle)
        except (OSError, json.JSONDecodeError):
            report = {}
        found = (report.get("budget"), report.get("search_seed"))
        if not os.path.isfile(chosen) or found != (budget, search_seed):
            state = "none ran" if not report else f"the one there ran with budget {found[0]}, search seed {found[1]}"
            raise ValueError(
                f"--search_lca_weights {budget} with --shard or --summarize_only: the λ search of {name!r} must have "
                f"finished first in {folder} with budget {budget} and --search_seed {search_seed} ({state}). Run it "
                "once before the shards: the same command with --search_only instead of --shard."
            )
        variants[name] = {"counterfactual": "learned", "lca_weights_file": chosen}
    return variants


def main(argv: list[str] | None = None) -> dict:
    """`run_experiments.py --variants plain,lca --seeds 0,1,2 --output_dir OUT -- <run_classification arguments>`."""
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    base_args = []
    if "--" in argv:
        split = argv.index("--")
        argv, base_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="run_experiments.py --variants plain,lca --seeds 0,1,2 --output_dir OUT [--shard K/N | --summarize_only] "
        "-- [PRESET.json] [--flag v ...]",
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
        "--shard",
        default=None,
        metavar="K/N",
        help="Run only shard K of N (1 ≤ K ≤ N) of the (variant, seed) cells — round robin over the variant-major "
        "order — and write no summary: one job of an array (`--shard ${SLURM_ARRAY_TASK_ID}/N`). Every shard needs "
        "the same --variants, --seeds and arguments after `--`.",
    )
    parser.add_argument(
        "--summarize_only",
        action="store_true",
        help="Run nothing: merge the finished cells of OUT into summary.json/md/png (same arguments as the shards). "
        "Missing cells are listed and the exit status is 1, unless --allow_missing.",
    )
    parser.add_argument(
        "--allow_missing",
        action="store_true",
        help="With --summarize_only: write the summary of the cells present, marked partial, listing the missing.",
    )
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
        "validation only) and add the variant `lca_tuned`. With --shard or --summarize_only the search must have "
        "run before (--search_only).",
    )
    parser.add_argument("--search_seed", type=int, default=1000, help="The search's training seed (not a study seed).")
    parser.add_argument(
        "--search_upper_bound",
        action="store_true",
        help="attention: also choose λ's on the decorrelated TEST split, as the labelled upper-bound variant "
        "`lca_tuned_on_test_upper_bound` (never a result).",
    )
    parser.add_argument(
        "--search_only",
        action="store_true",
        help="attention: run the λ search(es) of --search_lca_weights and stop (the step before a sharded sweep).",
    )
    args = parser.parse_args(argv)
    for flag in ("--seed", "--output_dir"):
        if flag in base_args:
            parser.error(f"{flag} after `--` is set by the sweep for each run; remove it.")
    try:
        seeds = parse_seeds(args.seeds, [0, 1, 2] if args.benchmark == "audio" else list(range(10)))
        shard = None if args.shard is None else parse_shard(args.shard)
    except ValueError as error:
        parser.error(str(error))
    if shard is not None and args.summarize_only:
        parser.error(f"--shard {args.shard} runs cells and --summarize_only runs none: give one of them.")
    if args.allow_missing and not args.summarize_only:
        parser.error("--allow_missing applies to --summarize_only only (a sweep that runs writes no partial summary).")
    if args.search_only and not (args.benchmark == "attention" and args.search_lca_weights > 0):
        parser.error("--search_only runs the λ search: give it with --benchmark attention --search_lca_weights BUDGET.")
    if args.search_only and (shard is not None or args.summarize_only):
        parser.error(
            "--search_only runs the λ search once, before the shards: give it without --shard/--summarize_only."
        )
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
        if not args.summarize_only:
            check_variants(checked, base_args, args.output_dir, seeds, "attention", args.variants_file)
        if shard is not None or args.summarize_only:
            tuned = finished_searches(searches, args.output_dir, args.search_lca_weights, args.search_seed)
        else:
            tuned = attention_study.tuned_variants(
                searches, base_args, args.output_dir, args.search_lca_weights, args.search_seed
            )
        if args.search_only:
            print(f"λ search(es) done: {json.dumps(tuned)}; now run the shards (--shard K/N) with the same arguments.")
            return {"tuned_variants": tuned}
        names += [name for name in tuned if name not in names]
        variants = load_variants(names, args.variants_file, builtin={**builtin, **tuned})
        runner = attention_study.main
    else:
        if args.baseline is not None and args.baseline not in names:
            parser.error(f"--baseline {args.baseline!r} is not one of --variants {names}.")
        variants = load_variants(names, args.variants_file)
        if not args.summarize_only:
            check_variants(variants, base_args, args.output_dir, seeds, "audio", args.variants_file)
    if args.summarize_only:
        return summarize_only(args.output_dir, variants, seeds, base_args, args.baseline, args.allow_missing)
    summary = run_all(args.output_dir, variants, seeds, base_args, runner=runner, baseline=args.baseline, shard=shard)
    if shard is None:
        print(summary_markdown(summary))
        return summary
    missing = summary.get("missing", [])
    total = len(variants) * len(seeds)
    print(
        f"[shard {shard[0]}/{shard[1]}] done: {total - len(missing)} of the sweep's {total} runs are complete in "
        f"{args.output_dir}. When every shard has finished: the same command with --summarize_only instead of --shard."
    )
    return summary


def summarize_only(
    output_dir: str,
    variants: dict[str, dict],
    seeds: list[int],
    base_args: list[str],
    baseline: str | None = None,
    allow_missing: bool = False,
) -> dict:
    """`--summarize_only`: the summary of the cells finished under `output_dir` (by shards or any earlier sweep),
    counting only runs made with this command's arguments. While a cell is missing, the missing ones are printed and
    the process exits with status 1 (nothing written), unless `allow_missing`: then the summary is written and says
    it is partial."""
    if not os.path.isdir(output_dir):
        raise SystemExit(f"--summarize_only: --output_dir {output_dir} does not exist; no run of the sweep is there.")
    run_argvs = sweep_run_argvs(output_dir, variants, seeds, base_args)
    summary = summarize(output_dir, list(variants), seeds, baseline, run_argvs)
    missing = missing_report(summary)
    heading = f"{len(missing)} of the sweep's {len(run_argvs)} runs are missing in {output_dir}:"
    if missing and not allow_missing:
        raise SystemExit(
            "\n  ".join([heading, *missing])
            + "\nNo summary written. Run the shards that hold them again (finished runs are skipped), give the same "
            "--variants, --seeds and arguments after `--` as the shards, or pass --allow_missing for a partial summary."
        )
    write_summary(output_dir, summary)
    print(summary_markdown(summary))
    if missing:
        print("\n  ".join([f"Partial summary written: {heading}", *missing]), file=sys.stderr)
    return summary
