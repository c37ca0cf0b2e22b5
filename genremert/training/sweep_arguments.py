"""The arguments of a sweep, checked before its first run: plain variant names, a readable variants file, distinct
seeds, a valid shard `K/N`, and every variant's whole command line parsed by its runner's own parser (naming variant,
file and flag). Also which (variant, seed) cells a shard runs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex


VARIANT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
# Flags the sweep sets for each run itself: a variant cannot set them.
SWEEP_FLAGS = ("seed", "output_dir")


def check_variant_name(name, source: str) -> None:
    """Refuses a variant name that is not a plain folder name (ASCII letters, digits, `_`, `-`, and `.` but not
    first): `../x`, `a/b`, `a\\b`, `.hidden` or an empty name would put the variant's runs outside the sweep folder."""
    if not isinstance(name, str) or VARIANT_NAME.fullmatch(name) is None:
        raise ValueError(
            f"variant {name!r} ({source}): a variant name must be a plain folder name made of letters, digits, '_', "
            f"'-' and '.' (not first), since its runs go to OUT/<name>/seed<k>/; rename it."
        )


def read_variants_file(variants_file: str) -> dict[str, dict]:
    """`variants_file`'s `{name: {flag: value}}`, every name checked by `check_variant_name`."""
    try:
        with open(variants_file, encoding="utf-8") as handle:
            user = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--variants_file {variants_file}: cannot read it as JSON ({error}).") from None
    if not isinstance(user, dict) or not all(isinstance(flags, dict) for flags in user.values()):
        raise ValueError(f"--variants_file {variants_file} must hold a JSON object {{name: {{flag: value}}}}.")
    for name in user:
        check_variant_name(name, f"--variants_file {variants_file}")
    return user


def parse_seeds(text: str | None, default: list[int]) -> list[int]:
    """`--seeds`: comma-separated distinct integers (`default` when the flag is not given). An empty list and a
    repeated seed (two runs sharing one folder `seed<k>`, counted twice in the statistics) are refused."""
    if text is None:
        return list(default)
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers such as 0,1,2, got {text!r}.") from None
    if not seeds:
        raise ValueError(f"--seeds {text!r} names no seed; expected comma-separated integers such as 0,1,2.")
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ValueError(
            f"--seeds {text!r} repeats seed(s) {repeated}; each seed is one run (folder seed<k>): give each once."
        )
    return seeds


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard K/N`: this process runs shard K of N (1 ≤ K ≤ N, K counted from 1 as SLURM's `--array=1-N` does)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None:
        raise ValueError(f"--shard {text!r}: expected K/N, shard K of N with whole numbers 1 ≤ K ≤ N, such as 2/4.")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ValueError(
            f"--shard {text!r}: expected K/N with 1 ≤ K ≤ N, got K={index}, N={count} (K counts from 1: with SLURM's "
            f"`--array=0-{max(count - 1, 0)}` pass $((SLURM_ARRAY_TASK_ID + 1))/{max(count, 1)})."
        )
    return index, count


def sweep_cells(variant_names: list[str], seeds: list[int]) -> list[tuple[str, int]]:
    """Every (variant, seed) of a sweep in its fixed order: variant-major, in the order of `--variants`, then of
    `--seeds`."""
    return [(name, seed) for name in variant_names for seed in seeds]


def shard_cells(cells: list[tuple[str, int]], shard: tuple[int, int] | None) -> list[tuple[str, int]]:
    """The cells shard `(K, N)` runs: those at positions K-1, K-1+N, K-1+2N, ... of `cells` (round robin, so each shard
    gets a mix of variants and seeds and the N shards together run each cell exactly once). The assignment depends
    only on the order of `cells`: every shard must be given the same --variants and --seeds. None: every cell."""
    if shard is None:
        return list(cells)
    index, count = shard
    return [cell for position, cell in enumerate(cells) if position % count == index - 1]


def _parse_problem(parse, argv: list[str]) -> str | None:
    """What `parse(argv)` refuses (its ValueError, or the message of an argparse error, which exits), else None."""
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages), contextlib.redirect_stdout(messages):
            parse(argv)
    except ValueError as error:
        return str(error)
    except SystemExit as error:
        lines = [line for line in messages.getvalue().splitlines() if line.strip()]
        message = lines[-1] if lines else f"the parser exited with status {error.code}"
        return message.split(" error: ", 1)[-1]
    return None


def check_variants(
    variants: dict[str, dict],
    base_args: list[str],
    output_dir: str,
    seeds: list[int],
    benchmark: str = "audio",
    variants_file: str | None = None,
) -> None:
    """Before the first run: parses every variant's whole argv (`run_argv`) with its runner's parser — the audio
    sweep's `run_classification.py` (`genremert.training.arguments.parse_arguments`, a JSON preset first included)
    or, with `benchmark="attention"`, `genremert.training.attention_study.parse_arguments` — so that a bad flag or
    value in a variant (or in the arguments after `--`) stops the sweep before any run, not after the runs before it.
    Raises ValueError naming the variant, where it comes from and the flag."""
    if benchmark == "attention":
        from .attention_study import build_parser, parse_arguments

        script = "genremert.training.attention_study"
    elif benchmark == "audio":
        from .arguments import build_parser, parse_arguments

        script = "run_classification.py"
    else:
        raise ValueError(f"--benchmark must be 'audio' or 'attention', got {benchmark!r}.")
    from_file = set(read_variants_file(variants_file)) if variants_file is not None else set()
    known = set(build_parser()._option_string_actions)
    seed = seeds[0] if seeds else 0
    for name, flags in variants.items():
        source = f"--variants_file {variants_file}" if name in from_file else "built in"
        check_variant_name(name, source)
        unknown = [f"--{key}" for key in flags if f"--{key}" not in known]
        if unknown:
            raise ValueError(
                f"variant {name!r} ({source}): {', '.join(unknown)} is not a flag of {script} (the variant's flags: "
                f"{sorted(flags)}); fix the variant before the sweep starts."
            )
        fixed = [key for key in flags if key in SWEEP_FLAGS]
        if fixed:
            raise ValueError(
                f"variant {name!r} ({source}): --{fixed[0]} is set by the sweep for each run (OUT/<variant>/seed<k>/); "
                "remove it from the variant."
            )
        run_dir = os.path.join(output_dir, name, f"seed{seed}")
        problem = _parse_problem(parse_arguments, run_argv(base_args, flags, seed, run_dir))
        if problem is None:
            continue
        if _parse_problem(parse_arguments, run_argv(base_args, {}, seed, run_dir)) == problem:
            raise ValueError(
                f"the arguments after `--` ({shlex.join(base_args) or 'none'}) are refused by {script}: {problem}"
            )
        raise ValueError(
            f"variant {name!r} ({source}, flags {shlex.join(_flags(flags))}): {script} refuses the run's arguments: "
            f"{problem}"
        )


def _flags(values: dict) -> list[str]:
    flags = []
    for key, value in values.items():
        flags += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def run_argv(base_args: list[str], variant_flags: dict, seed: int, output_dir: str) -> list[str]:
    """The run_classification.py arguments of one run: the base arguments (a preset first, if any), then the
    variant's flags, the training seed and the run's folder (later flags override earlier ones)."""
    return [*base_args, *_flags(variant_flags), "--seed", str(seed), "--output_dir", output_dir]
