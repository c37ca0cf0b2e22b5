"""run_experiments.py: the sweep makes the right runs, skips finished ones, resumes interrupted ones, and its paired
statistics match hand computations on crafted results."""

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from genremert.training import experiments


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from test_run_classification import SYNTHETIC, TINY_CRNN  # noqa: E402


def crafted_runner(values):
    """A stand-in for run_classification: writes all_results.json with crafted numbers per (variant, seed)."""
    calls = []

    def run(argv):
        calls.append(argv)
        output_dir = argv[argv.index("--output_dir") + 1]
        seed = int(argv[argv.index("--seed") + 1])
        variant = Path(output_dir).parent.name
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "all_results.json"), "w") as handle:
            json.dump({**values[variant][seed], "model_type": "crnn_fgnl"}, handle)
        return {}

    return run, calls


CRAFTED = {
    # baseline
    "plain": {
        0: {"test_song_f1": 0.50, "test_frame_f1": 0.40},
        1: {"test_song_f1": 0.60, "test_frame_f1": 0.45},
        2: {"test_song_f1": 0.55, "test_frame_f1": 0.50},
    },
    # clearly better: paired differences 0.10, 0.12, 0.11
    "lca": {
        0: {"test_song_f1": 0.60, "test_frame_f1": 0.41},
        1: {"test_song_f1": 0.72, "test_frame_f1": 0.44},
        2: {"test_song_f1": 0.66, "test_frame_f1": 0.50},
    },
    # not better: differences +0.05, −0.06, +0.01
    "cal": {
        0: {"test_song_f1": 0.55, "test_frame_f1": 0.40},
        1: {"test_song_f1": 0.54, "test_frame_f1": 0.45},
        2: {"test_song_f1": 0.56, "test_frame_f1": 0.50},
    },
}


def test_statistics_against_hand_values(tmp_path):
    runner, calls = crafted_runner(CRAFTED)
    variants = experiments.load_variants(["plain", "lca", "cal"])
    summary = experiments.run_all(str(tmp_path), variants, [0, 1, 2], ["--dataset", "synthetic"], runner=runner)
    assert len(calls) == 9
    # Each run: the variant's flags and the seed after the base arguments, its own folder.
    lca_seed1 = next(argv for argv in calls if argv[-1].endswith(os.path.join("lca", "seed1")))
    assert lca_seed1[:2] == ["--dataset", "synthetic"] and "--counterfactual" in lca_seed1
    assert lca_seed1[lca_seed1.index("--seed") + 1] == "1"

    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["baseline"] == "plain" and written["seeds"] == [0, 1, 2]
    plain = written["variants"]["plain"]["metrics"]["test_song_f1"]
    assert plain["mean"] == pytest.approx(0.55) and plain["std"] == pytest.approx(0.05) and plain["best"] == 0.60
    assert written["variants"]["lca"]["runs"]["1"]["test_song_f1"] == 0.72

    better = written["comparisons"]["lca"]["test_song_f1"]
    # By hand: differences 0.10, 0.12, 0.11 → mean 0.11, sd 0.01, t(0.975, 2) = 4.302653, half-width 0.024841;
    # t = 0.11 / (0.01 / √3) = 19.053 → two-sided p = 0.002743.
    assert better["n"] == 3 and better["difference"] == pytest.approx(0.11)
    assert better["ci_low"] == pytest.approx(0.11 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    assert better["ci_high"] == pytest.approx(0.11 + 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    assert better["p_value"] == pytest.approx(0.002743, abs=2e-6)
    not_better = written["comparisons"]["cal"]["test_song_f1"]
    # Differences 0.05, −0.06, 0.01: mean 0, sd 0.0556776, so the interval straddles 0 and p = 1.
    assert not_better["difference"] == pytest.approx(0.0, abs=1e-12)
    assert not_better["ci_low"] < 0 < not_better["ci_high"] and not_better["p_value"] == pytest.approx(1.0)
    assert "plain" not in written["comparisons"]

    markdown = (tmp_path / "summary.md").read_text()
    assert "| `lca` | 3 |" in markdown and "0.660 ± 0.060" in markdown and "no significant difference" in markdown
    assert (tmp_path / "summary.png").read_bytes().startswith(b"\x89PNG")


def test_the_sentence_follows_the_numbers(tmp_path):
    runner, _ = crafted_runner(CRAFTED)
    summary = experiments.run_all(
        str(tmp_path), experiments.load_variants(["plain", "lca", "cal"]), [0, 1, 2], [], runner=runner
    )
    assert experiments.comparison_sentence(summary, "lca", "test_song_f1").endswith(
        "lca is higher (the interval excludes 0)."
    )
    assert experiments.comparison_sentence(summary, "cal", "test_song_f1").endswith("no significant difference.")
    # Make LCA worse in the crafted results: the sentence changes with them.
    worse = {
        **CRAFTED,
        "lca": {seed: {"test_song_f1": v["test_song_f1"] - 0.2} for seed, v in CRAFTED["plain"].items()},
    }
    worse["lca"][1]["test_song_f1"] -= 0.01
    runner, _ = crafted_runner(worse)
    summary = experiments.run_all(
        str(tmp_path / "worse"), experiments.load_variants(["plain", "lca"]), [0, 1, 2], [], runner=runner
    )
    assert experiments.comparison_sentence(summary, "lca", "test_song_f1").endswith(
        "lca is lower (the interval excludes 0)."
    )


def test_finished_runs_are_skipped_and_variants_files_are_read(tmp_path):
    runner, calls = crafted_runner({**CRAFTED, "mine": CRAFTED["lca"]})
    variants_file = tmp_path / "variants.json"
    variants_file.write_text(json.dumps({"mine": {"counterfactual": "learned", "lambda_att": 0.5}}))
    variants = experiments.load_variants(["plain", "mine"], str(variants_file))
    experiments.run_all(str(tmp_path / "out"), variants, [0, 1], [], runner=runner)
    assert len(calls) == 4
    experiments.run_all(str(tmp_path / "out"), variants, [0, 1, 2], [], runner=runner)
    assert len(calls) == 6  # only the new seed ran
    with pytest.raises(ValueError, match=r"unknown variant\(s\) \['nope'\]"):
        experiments.load_variants(["plain", "nope"])


def test_a_real_sweep_resumes_an_interrupted_run(tmp_path):
    """Tiny CRNN_FGNL on the synthetic set, two variants × one seed, in this process; then one run is 'killed' after
    its first epoch (results and marker gone, its checkpoints kept) and the sweep resumes only that one."""
    base = [
        "--model_type", "crnn_fgnl", "--dataset", "synthetic", "--data_dir", str(tmp_path / "cache"),
        "--synthetic_options", json.dumps(SYNTHETIC), "--slice_seconds", "1.0", "--config_overrides", TINY_CRNN,
        "--cf_warmup_epochs", "1", "--num_train_epochs", "2", "--per_device_train_batch_size", "4",
        "--save_strategy", "epoch", "--eval_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
        "--do_train", "--do_eval", "--do_predict",
    ]  # fmt: skip
    out = tmp_path / "sweep"
    variants = experiments.load_variants(["plain", "lca"])
    summary = experiments.run_all(str(out), variants, [0], base)
    assert set(summary["variants"]) == {"plain", "lca"}
    assert "test_song_f1_ci_low" in summary["variants"]["lca"]["runs"]["0"]
    plain_results = (out / "plain" / "seed0" / "all_results.json").stat().st_mtime_ns

    killed = out / "lca" / "seed0"
    finished = json.loads((killed / "all_results.json").read_text())
    for name in ("all_results.json", experiments.MARKER, "model.safetensors"):
        (killed / name).unlink()
    checkpoints = sorted(killed.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for later in checkpoints[1:]:  # as if killed during epoch 2
        import shutil

        shutil.rmtree(later)
    ran = []

    def recording_runner(argv):
        from genremert.training.run import main

        ran.append(argv)
        return main(argv)

    experiments.run_all(str(out), variants, [0], base, runner=recording_runner)
    assert len(ran) == 1 and "--resume_from_checkpoint" in ran[0] and ran[0][-1] == "last"
    assert (out / "plain" / "seed0" / "all_results.json").stat().st_mtime_ns == plain_results
    resumed = json.loads((killed / "all_results.json").read_text())
    for key in ("test_song_f1", "test_frame_f1", "test_loss"):
        assert resumed[key] == finished[key], key
    assert np.isfinite(resumed["train_loss"])


def test_a_sweep_under_accelerate_launch_with_two_processes(tmp_path):
    """`accelerate launch run_experiments.py`: every run is one two-process (gloo) training, the summary is written
    once, and a second launch skips the finished runs."""
    import shutil as shell
    import subprocess

    from test_run_classification import run_script, tiny_flags

    if shell.which("accelerate") is None:
        pytest.skip("the accelerate launcher is not installed")
    out = tmp_path / "sweep"
    flags = tiny_flags(tmp_path / "cache", tmp_path / "unused")
    position = flags.index("--output_dir")
    del flags[position : position + 2]
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29541"]
    command = [*launch, "run_experiments.py", "--variants", "plain,lca", "--seeds", "0", "--output_dir", str(out), "--"]
    run_script([*command, *flags], env_extra={"ACCELERATE_USE_CPU": "true"}, timeout=400)
    summary = json.loads((out / "summary.json").read_text())
    for variant in ("plain", "lca"):
        assert summary["variants"][variant]["runs"]["0"]["world_size"] == 2
    again = run_script([*command, *flags], env_extra={"ACCELERATE_USE_CPU": "true"}, timeout=400)
    assert again.stderr.count("complete: skipped") + again.stdout.count("complete: skipped") >= 2
    del subprocess
