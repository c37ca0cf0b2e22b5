"""run_experiments.py --shard K/N and --summarize_only: the shards of a job array run each (variant, seed) cell once,
can share one output folder at the same time, and their merged summary is the one an unsharded sweep writes; a summary
with cells missing names them and is refused unless --allow_missing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genremert.training import attention_study, experiments
from genremert.training.sweep_arguments import parse_shard, shard_cells, sweep_cells


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from test_experiments import CRAFTED, crafted_runner  # noqa: E402


# The attention study's frame-level cells: a tiny GenreMERT head, a second or so each on a CPU core.
TINY_ATTENTION = ["--num_train", "64", "--num_validation", "32", "--num_test", "32", "--num_train_epochs", "2"]
SWEEP = ["--benchmark", "attention", "--variants", "plain,lca", "--seeds", "0,1,2"]


def without_timings(summary: dict) -> dict:
    """The summary without wall-clock metrics (`train_runtime`): the only numbers two runs of one cell may differ in."""
    text = json.dumps(summary)
    summary = json.loads(text)
    for data in summary["variants"].values():
        data["metrics"] = {key: value for key, value in data["metrics"].items() if "runtime" not in key}
        for run in data["runs"].values():
            for key in [key for key in run if "runtime" in key]:
                del run[key]
    for comparisons in summary["comparisons"].values():
        for key in [key for key in comparisons if "runtime" in key]:
            del comparisons[key]
    return summary


def test_two_shard_processes_at_once_merge_into_the_unsharded_summary(tmp_path, capsys):
    sharded = tmp_path / "sharded"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "run_experiments.py", *SWEEP, "--output_dir", str(sharded)]
    shards = [
        subprocess.Popen(
            [*command, "--shard", f"{index}/2", "--", *TINY_ATTENTION],
            cwd=REPO,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in (1, 2)
    ]
    # Meanwhile the same sweep unsharded, in this process, with the shards' one torch thread (same float reductions).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        unsharded = experiments.main([*SWEEP, "--output_dir", str(tmp_path / "unsharded"), "--", *TINY_ATTENTION])
    finally:
        torch.set_num_threads(threads)
    logs = [shard.communicate(timeout=300)[0] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], logs
    # Variant-major order plain 0, plain 1, plain 2, lca 0, lca 1, lca 2; shard K takes positions K-1, K-1+2, ...
    assert "[shard 1/2] 3 of the sweep's 6 runs: plain seed 0, plain seed 2, lca seed 1" in logs[0]
    assert "[shard 2/2] 3 of the sweep's 6 runs: plain seed 1, lca seed 0, lca seed 2" in logs[1]
    assert "6 of the sweep's 6 runs are complete" in logs[0] + logs[1]
    assert not list(sharded.glob("summary*")), "a shard wrote a summary: only --summarize_only may"
    for variant, seed in sweep_cells(["plain", "lca"], [0, 1, 2]):
        marker = json.loads((sharded / variant / f"seed{seed}" / experiments.MARKER).read_text())
        assert (marker["variant"], marker["seed"]) == (variant, seed)

    capsys.readouterr()
    merged = experiments.main([*SWEEP, "--output_dir", str(sharded), "--summarize_only", "--", *TINY_ATTENTION])
    assert merged["missing"] == [] == unsharded["missing"]
    assert without_timings(merged) == without_timings(unsharded)
    written = json.loads((sharded / "summary.json").read_text())
    assert without_timings(written) == without_timings(
        json.loads((tmp_path / "unsharded" / "summary.json").read_text())
    )
    assert written["comparisons"]["lca"]["decorrelated_accuracy"]["n"] == 3
    assert "decorrelated accuracy" in capsys.readouterr().out


def test_after_one_shard_the_missing_cells_are_named_and_the_summary_refused(tmp_path, capsys):
    out = tmp_path / "out"
    variants = experiments.load_variants(["plain", "lca", "cal"])
    runner, calls = crafted_runner(CRAFTED)
    partial = experiments.run_all(str(out), variants, [0, 1, 2], [], runner=runner, shard=(1, 2), log=lambda m: None)
    # Positions 0, 2, 4, 6, 8 of plain 0 1 2, lca 0 1 2, cal 0 1 2.
    ran = sorted((Path(argv[-1]).parent.name, Path(argv[-1]).name) for argv in calls)
    assert ran == sorted([("plain", "seed0"), ("plain", "seed2"), ("lca", "seed1"), ("cal", "seed0"), ("cal", "seed2")])
    assert not (out / "summary.json").exists()
    expected_missing = [("plain", 1), ("lca", 0), ("lca", 2), ("cal", 1)]
    assert [(cell["variant"], cell["seed"]) for cell in partial["missing"]] == expected_missing
    (out / "lca" / "seed0").mkdir(parents=True)  # a run that started and was killed: a folder, no marker

    summarize = ["--variants", "plain,lca,cal", "--seeds", "0,1,2", "--output_dir", str(out), "--summarize_only", "--"]
    with pytest.raises(SystemExit) as refused:
        experiments.main(summarize)
    message = str(refused.value.code)
    assert "4 of the sweep's 9 runs are missing" in message and "No summary written" in message
    assert "`plain` seed 1: not run" in message and "`cal` seed 1: not run" in message
    assert "`lca` seed 0: unfinished" in message and "`lca` seed 1" not in message
    assert not (out / "summary.json").exists()

    # Other arguments after `--` than the shards': the finished runs are not this sweep's and are not counted.
    with pytest.raises(SystemExit) as other:
        experiments.main([*summarize, "--num_train_epochs", "9"])
    assert "9 of the sweep's 9 runs are missing" in str(other.value.code)
    assert str(other.value.code).count("finished with other arguments") == 5

    capsys.readouterr()
    allowed = experiments.main([*summarize[:-1], "--allow_missing", "--"])
    assert [(cell["variant"], cell["seed"]) for cell in allowed["missing"]] == expected_missing
    assert allowed["variants"]["lca"]["runs"] == {"1": {"test_song_f1": 0.72, "test_frame_f1": 0.44}}
    assert "Partial summary written: 4 of the sweep's 9 runs are missing" in capsys.readouterr().err
    markdown = (out / "summary.md").read_text()
    assert "**Partial summary: 4 of 9 runs missing**" in markdown and "- `lca` seed 2: not run" in markdown
    assert json.loads((out / "summary.json").read_text())["missing"] == allowed["missing"]

    # The second shard runs exactly the rest; the merge is then the unsharded sweep's summary, to the last digit.
    experiments.run_all(str(out), variants, [0, 1, 2], [], runner=runner, shard=(2, 2), log=lambda m: None)
    assert len(calls) == 9 and len({argv[-1] for argv in calls}) == 9
    merged = experiments.main(summarize)
    whole_runner, _ = crafted_runner(CRAFTED)
    whole = experiments.run_all(str(tmp_path / "whole"), variants, [0, 1, 2], [], runner=whole_runner, log=print)
    assert merged == whole and merged["missing"] == []
    assert (out / "summary.json").read_text() == (tmp_path / "whole" / "summary.json").read_text()
    assert (out / "summary.md").read_text() == (tmp_path / "whole" / "summary.md").read_text()


@pytest.mark.parametrize("value", ["0/2", "3/2", "2", "1/0", "0/0", "a/b", "-1/2", "1/2/3", "", "1.5/2"])
def test_bad_shard_values_are_refused(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as refused:
        experiments.main(["--variants", "plain", "--output_dir", str(tmp_path / "out"), f"--shard={value}", "--"])
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert f"--shard {value!r}: expected K/N" in error and "1 ≤ K ≤ N" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--shard", "1/2", "--summarize_only"], "--shard 1/2 runs cells and --summarize_only runs none"),
        (["--allow_missing"], "--allow_missing applies to --summarize_only only"),
        (["--search_only"], "--search_only runs the λ search: give it with --benchmark attention"),
    ],
)
def test_flags_that_contradict_each_other_are_refused(tmp_path, capsys, flags, expected):
    with pytest.raises(SystemExit):
        experiments.main(["--variants", "plain", "--output_dir", str(tmp_path / "out"), *flags, "--"])
    assert expected in capsys.readouterr().err


def test_the_shards_of_any_count_run_every_cell_exactly_once():
    cells = sweep_cells(["plain", "cal", "lca"], [0, 1, 2, 3])
    assert cells[:5] == [("plain", 0), ("plain", 1), ("plain", 2), ("plain", 3), ("cal", 0)]
    for count in range(1, 15):  # more shards than cells too: the extra ones run nothing
        shards = [shard_cells(cells, parse_shard(f"{index}/{count}")) for index in range(1, count + 1)]
        assert sorted(cell for shard in shards for cell in shard) == sorted(cells)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert parse_shard(" 2 / 4 ") == (2, 4) and shard_cells(cells, None) == cells


def test_a_sharded_attention_sweep_reuses_a_finished_search_and_never_runs_one(tmp_path, monkeypatch):
    ran, searched = [], []

    def fake_study(argv):
        ran.append(argv)
        folder = argv[argv.index("--output_dir") + 1]
        os.makedirs(folder, exist_ok=True)
        Path(folder, "all_results.json").write_text(json.dumps({"decorrelated_accuracy": 0.5}))

    monkeypatch.setattr(attention_study, "main", fake_study)
    monkeypatch.setattr(attention_study, "search_lca_weights", lambda *args, **kwargs: searched.append(args))
    out = tmp_path / "out"
    sweep = ["--benchmark", "attention", "--variants", "plain", "--seeds", "0,1", "--output_dir", str(out)]
    sweep += ["--search_lca_weights", "3"]
    with pytest.raises(ValueError, match=r"the λ search of 'lca_tuned' must have finished first .*none ran.*"
                       r"--search_only"):  # fmt: skip
        experiments.main([*sweep, "--shard", "1/2", "--"])
    search = out / "search_lca_tuned"
    search.mkdir(parents=True)
    (search / "search.json").write_text(json.dumps({"budget": 5, "search_seed": 1000}))
    (search / "chosen_weights.json").write_text(json.dumps({"ce_main": 1.0, "att": 0.5}))
    with pytest.raises(ValueError, match=r"the one there ran with budget 5, search seed 1000"):
        experiments.main([*sweep, "--shard", "1/2", "--"])
    (search / "search.json").write_text(json.dumps({"budget": 3, "search_seed": 1000}))
    for index in (1, 2):
        experiments.main([*sweep, "--shard", f"{index}/2", "--"])
    assert searched == [] and len(ran) == 4
    tuned = [argv for argv in ran if "lca_tuned" in argv[-1]]
    assert len(tuned) == 2 and all(str(search / "chosen_weights.json") in argv for argv in tuned)
    merged = experiments.main([*sweep, "--summarize_only", "--"])
    assert set(merged["variants"]) == {"plain", "lca_tuned"} and merged["missing"] == []
