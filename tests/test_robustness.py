"""robustness.py: the PGD attack lowers the accuracy of a model that is not robust and never exceeds its SNR budget
on any slice; corruption curves go the expected way on a crafted case; the plot is written."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_configs import tiny_crnn_fgnl_config


sys.path.insert(0, str(Path(__file__).resolve().parent))

from genremert import CRNNFGNLForAudioClassification, robustness_curves
from genremert.analysis.robustness import corrupt, evaluate_under, pgd_attack, plot_curves, snr_db
from genremert.training import run


RATE = 16000


def tone_slices(count_per_class=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for label, frequency in enumerate((300.0, 1200.0, 4000.0)):
        for index in range(count_per_class):
            t = np.arange(RATE) / RATE
            wave = 0.3 * np.sin(2 * np.pi * (frequency + rng.uniform(-20, 20)) * t) + 0.02 * rng.standard_normal(RATE)
            rows.append({"input_values": wave.astype(np.float32), "label": label, "song_id": f"{label}-{index // 2}"})
    return rows


@pytest.fixture(scope="module")
def tone_model():
    """A tiny CRNN_FGNL trained to tell three tones apart: accurate, and not robust."""
    torch.manual_seed(0)
    model = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config(conv_dropout=0.0, classifier_dropout=0.0))
    rows = tone_slices(seed=1)
    inputs = torch.from_numpy(np.stack([row["input_values"] for row in rows]))
    labels = torch.tensor([row["label"] for row in rows])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        optimizer.zero_grad()
        model(inputs, labels=labels).loss.backward()
        optimizer.step()
    return model.eval()


def test_the_attack_lowers_accuracy_and_never_exceeds_its_budget(tone_model):
    slices = tone_slices(seed=2)
    clean = evaluate_under(tone_model, slices)
    assert clean["frame_accuracy"] >= 0.9
    waveforms = torch.from_numpy(np.stack([row["input_values"] for row in slices]))
    labels = torch.tensor([row["label"] for row in slices])
    for budget in (30.0, 10.0):
        attacked, reached = pgd_attack(tone_model, waveforms, labels, budget, steps=10, restarts=2)
        assert torch.all(reached >= budget - 1e-3), (budget, reached.min())  # every slice within its budget
        torch.testing.assert_close(reached, snr_db(waveforms, attacked - waveforms))
    scores = evaluate_under(tone_model, slices, lambda w, y, n: pgd_attack(tone_model, w, y, 10.0, steps=10))
    assert scores["frame_accuracy"] < clean["frame_accuracy"] - 0.3
    assert scores["snr_reached_min"] >= 10.0 - 1e-3
    assert set(scores) >= {"frame_f1", "song_accuracy", "song_f1"}


def test_corruption_curves_go_the_expected_way_and_are_deterministic(tone_model, tmp_path):
    slices = tone_slices(seed=3)
    results = robustness_curves(
        {"tones": tone_model}, slices, snrs=(40.0, 0.0, -20.0), cutoffs=(6000.0, 200.0), attack=False, progress=False
    )
    white = [results["tones"]["white_noise"][level]["frame_accuracy"] for level in ("40.0", "0.0", "-20.0")]
    assert white[0] >= white[1] >= white[2] and white[0] - white[2] >= 0.3
    lowpass = results["tones"]["lowpass"]
    assert lowpass["6000.0"]["frame_accuracy"] >= lowpass["200.0"]["frame_accuracy"]  # 200 Hz removes every tone
    again = robustness_curves({"tones": tone_model}, slices, snrs=(0.0,), cutoffs=(), attack=False, progress=False,
                              corruptions=("white_noise",))  # fmt: skip
    assert again["tones"]["white_noise"]["0.0"] == results["tones"]["white_noise"]["0.0"]
    waveforms = torch.from_numpy(np.stack([row["input_values"] for row in slices[:2]]))
    noisy = corrupt(waveforms, "band_noise", 10.0, RATE)
    torch.testing.assert_close(snr_db(waveforms, noisy - waveforms), torch.full((2,), 10.0), atol=0.05, rtol=0)
    path = plot_curves(
        {"a": {"pgd": {"30": {"frame_accuracy": 0.9}, "10": {"frame_accuracy": 0.2}}, **results["tones"]}},
        tmp_path / "curves.png",
    )
    assert path.read_bytes().startswith(b"\x89PNG")


# ----------------------------------------------------------------------------------------------------------------------
# Transfer between label sets (--finetune)
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_model(tmp_path_factory):
    """A tiny CRNN_FGNL trained on 3 synthetic singers."""
    from test_run_classification import tiny_flags

    folder = tmp_path_factory.mktemp("transfer")
    run.main(tiny_flags(folder / "synthetic", folder / "source", "--report_to", "none"))
    return folder


@pytest.mark.parametrize("mode", ["head", "all"])
def test_finetuning_on_a_new_label_set(source_model, mode):
    import json

    from safetensors.torch import load_file
    from test_run_classification import SYNTHETIC, tiny_flags
    from transformers import pipeline

    target = source_model / f"target_{mode}"
    flags = tiny_flags(source_model / "synthetic4", target, "--report_to", "none")
    flags[flags.index("--synthetic_options") + 1] = json.dumps({**SYNTHETIC, "num_classes": 4})
    position = flags.index("--config_overrides")  # the architecture comes from the source model
    del flags[position : position + 2]
    flags += ["--model_name_or_path", str(source_model / "source"), "--finetune", mode]
    results = run.main(flags)
    assert 0.0 <= results["test_song_accuracy"] <= 1.0
    before = load_file(source_model / "source" / "model.safetensors")
    after = load_file(target / "model.safetensors")
    assert after["head.classifier.weight"].shape == (4, 8) and before["head.classifier.weight"].shape == (3, 8)
    changed = {key for key in before if key in after and key != "head.classifier.weight" and key != "head.classifier.bias"
               and not torch.equal(before[key], after[key])}  # fmt: skip
    if mode == "head":
        assert changed == set(), sorted(changed)[:5]  # every parameter but the classifier, unchanged
    else:
        assert len(changed) > 10  # the whole network trained
    config = json.loads((target / "config.json").read_text())
    assert config["finetuned_from"]["finetune"] == mode and config["finetuned_from"]["labels"][0] == "singer_0"
    assert len(config["id2label"]) == 4
    classifier = pipeline("audio-classification", model=str(target), trust_remote_code=True)
    assert len(classifier(np.zeros(RATE, dtype=np.float32) + 0.01, top_k=None)) == 4
    from transformers import AutoConfig

    from genremert import build_model_card

    card = build_model_card(
        AutoConfig.from_pretrained(target, trust_remote_code=True), "me/x", results, {}, "none", 1, []
    )
    assert f"`--finetune {mode}`" in card and "fine-tuned from" in card


def test_finetune_needs_a_model_to_transfer_from():
    from genremert import ModelArguments

    with pytest.raises(ValueError, match="--finetune head needs --model_name_or_path"):
        ModelArguments(finetune="head")


def test_the_command_line_writes_json_and_a_plot_for_several_models(source_model, tmp_path):
    import json

    from genremert.analysis.robustness import main

    run = str(source_model / "source")
    code = main(["--model_dir", run, "--model_dir", run, "--name", "a", "--name", "b", "--output_dir", str(tmp_path),
                 "--snr_db", "30", "10", "--cutoff_hz", "1000", "--steps", "2", "--max_slices", "6"])  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "robustness.json").read_text())
    assert set(results) == {"a", "b"} and results["a"] == results["b"]  # deterministic given the seed
    assert results["a"]["pgd"]["10.0"]["snr_reached_min"] >= 10.0 - 1e-3
    assert (tmp_path / "robustness.png").read_bytes().startswith(b"\x89PNG")


# ----------------------------------------------------------------------------------------------------------------------
# Multi-label taggers: a BCE attack, scored with the tagging metrics
# ----------------------------------------------------------------------------------------------------------------------

TAG_HZ = (300.0, 1200.0, 4000.0)


def tag_slices(count=18, seed=0):
    """One-second slices, each a mixture of a random non-empty subset of three tones (its tags)."""
    rng = np.random.default_rng(seed)
    time = np.arange(RATE) / RATE
    rows = []
    for index in range(count):
        tags = [k for k in range(len(TAG_HZ)) if rng.random() < 0.5] or [int(rng.integers(len(TAG_HZ)))]
        wave = 0.02 * rng.standard_normal(RATE)
        for k in tags:
            wave += 0.3 * np.sin(2 * np.pi * (TAG_HZ[k] + rng.uniform(-20, 20)) * time)
        rows.append({"input_values": wave.astype(np.float32), "label": tags, "song_id": f"song{index}"})
    return rows


def multi_hot(rows):
    targets = torch.zeros(len(rows), len(TAG_HZ))
    for i, row in enumerate(rows):
        targets[i, row["label"]] = 1.0
    return targets


def tiny_tagger(**overrides):
    torch.manual_seed(0)
    overrides = {"problem_type": "multi_label_classification", "conv_dropout": 0.0, "classifier_dropout": 0.0,
                 **overrides}  # fmt: skip
    return CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config(**overrides))


def test_a_tagger_is_attacked_on_its_bce_and_scored_with_the_tagging_metrics():
    from genremert.analysis.robustness import TAGGING_SCORES

    model = tiny_tagger()
    rows = tag_slices(24, seed=1)
    inputs = torch.from_numpy(np.stack([row["input_values"] for row in rows]))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        optimizer.zero_grad()
        model(inputs, labels=multi_hot(rows)).loss.backward()
        optimizer.step()
    model.eval()
    slices = tag_slices(seed=2)
    clean = evaluate_under(model, slices)
    assert set(clean) == {*TAGGING_SCORES, "frame_num_excluded_tags", "song_num_excluded_tags"}
    assert clean["frame_roc_auc"] >= 0.9 and clean["frame_num_excluded_tags"] == 0
    waveforms = torch.from_numpy(np.stack([row["input_values"] for row in slices]))
    attacked, reached = pgd_attack(model, waveforms, multi_hot(slices), 10.0, steps=10, restarts=2)
    assert torch.all(reached >= 10.0 - 1e-3)
    torch.testing.assert_close(reached, snr_db(waveforms, attacked - waveforms))
    scores = evaluate_under(model, slices, lambda w, y, n: pgd_attack(model, w, y, 10.0, steps=10))
    assert scores["frame_roc_auc"] < clean["frame_roc_auc"] - 0.3 and scores["snr_reached_min"] >= 10.0 - 1e-3
    with pytest.raises(ValueError, match=r"multi-hot tag targets of shape \(18, 3\).*got shape \(18,\)"):
        pgd_attack(model, waveforms, torch.zeros(18, dtype=torch.long), 10.0)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"step_size": -1.0}, "step_size must be a finite fraction of the budget > 0, got -1.0"),
        ({"step_size": 0.0}, "step_size must be .* > 0, got 0.0"),
        ({"steps": 0}, "steps must be an integer >= 1, got 0"),
        ({"restarts": 0}, "restarts must be an integer >= 1, got 0"),
        ({"snr": float("nan")}, "snr must be a finite number of dB, got nan"),
    ],
)
def test_the_attack_refuses_parameters_that_do_not_attack(parameters, message):
    model = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config())
    waveforms = torch.zeros(2, RATE)
    arguments = {"snr": 10.0, **parameters}
    with pytest.raises(ValueError, match=message):
        pgd_attack(model, waveforms, torch.zeros(2, dtype=torch.long), **arguments)


# ----------------------------------------------------------------------------------------------------------------------
# The command line refuses bad flags and folders before it loads any data
# ----------------------------------------------------------------------------------------------------------------------


def model_folder(folder, model, data_args):
    """`model` saved as a training output folder whose run_args.json holds `data_args`."""
    import json

    model.save_pretrained(folder)
    (folder / "run_args.json").write_text(json.dumps({"data_args": data_args}), encoding="utf-8")
    return str(folder)


@pytest.fixture
def no_data(monkeypatch):
    """Loading any data fails the test: refusals must come before it."""
    from genremert.analysis import cli

    def refuse(*args, **kwargs):
        raise AssertionError("the test slices were loaded")

    monkeypatch.setattr(cli, "_load_slices", refuse)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--step_size", "-1"], "--step_size -1: expected a finite number > 0"),
        (["--step_size", "0"], "--step_size 0: expected a finite number > 0"),
        (["--step_size", "inf"], "--step_size inf: expected a finite number > 0"),
        (["--steps", "0"], "--steps 0: expected an integer >= 1"),
        (["--restarts", "0"], "--restarts 0: expected an integer >= 1"),
        (["--snr_db", "30", "nan"], "--snr_db nan: expected a finite number"),
        (["--snr_db=-inf"], "--snr_db -inf: expected a finite number"),
        (["--cutoff_hz", "0"], "--cutoff_hz 0: expected a finite number > 0"),
        (["--batch_size", "0"], "--batch_size 0: expected an integer >= 1"),
        (["--max_slices", "-1"], "--max_slices -1: expected an integer >= 0"),
        (["--seed", "-1"], "--seed -1: expected an integer >= 0"),
        (["--name", "a", "--name", "a"], r"the --model_dir \S+, \S+ are all named 'a': give each its own --name"),
    ],
)
def test_bad_flags_are_named_before_any_model_is_loaded(flags, message, tmp_path, capsys, no_data):
    import re

    from genremert.analysis.robustness import main

    missing = str(tmp_path / "missing")  # were the folder looked at, its absence would be the error
    with pytest.raises(SystemExit) as exit_info:
        main(["--model_dir", missing, "--model_dir", missing, "--output_dir", str(tmp_path / "out"), *flags])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_model_folders_that_are_missing_or_not_training_outputs_are_named(tmp_path, capsys, no_data):
    from genremert.analysis.robustness import main

    good = model_folder(tmp_path / "good", CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config()), {})
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("")
    export = tmp_path / "export"
    CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config()).save_pretrained(export)  # a Hub export: no run_args.json
    cases = {
        str(tmp_path / "nope"): f"--model_dir {tmp_path / 'nope'} does not exist.",
        str(tmp_path / "a_file"): f"--model_dir {tmp_path / 'a_file'} is not a folder",
        str(tmp_path / "empty"): "is not a training output folder: it has no config.json and no run_args.json",
        str(export): f"--model_dir {export} is not a training output folder: it has no run_args.json (",
    }
    for folder, message in cases.items():
        # second on the command line: the first folder's data must not be loaded before the second is checked
        code = main(["--model_dir", good, "--model_dir", folder, "--name", "a", "--name", "b",
                     "--output_dir", str(tmp_path / "out")])  # fmt: skip
        error = capsys.readouterr().err
        assert code == 1 and message in error and "--dataset" not in error, error
    assert not (tmp_path / "out").exists()


def test_models_that_cannot_share_the_test_slices_are_refused_before_loading_them(tmp_path, capsys, no_data):
    from genremert.analysis.robustness import main

    synthetic = {"dataset": "synthetic", "synthetic_options": "{}"}
    classes = model_folder(tmp_path / "classes", CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config()), synthetic)
    tags = model_folder(tmp_path / "tags", tiny_tagger(), synthetic)
    flags = ["--output_dir", str(tmp_path / "out")]
    assert main(["--model_dir", classes, "--model_dir", tags, *flags]) == 1
    error = capsys.readouterr().err
    assert f"--model_dir {tags} predicts 3 tags (multi-label) and --model_dir {classes} 3 classes" in error
    assert main(["--model_dir", classes, "--cutoff_hz", "1000", "8000", *flags]) == 1
    assert f"--cutoff_hz 8000 is not below 8000 Hz, the Nyquist frequency of the model in --model_dir {classes}" in (
        capsys.readouterr().err
    )
    other = model_folder(tmp_path / "other", CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config()),
                         {**synthetic, "synthetic_options": '{"seed": 1}'})  # fmt: skip
    with pytest.raises(AssertionError, match="the test slices were loaded"):  # only a warning: then the data loads
        main(["--model_dir", classes, "--model_dir", other, *flags])
    assert f"warning: --model_dir {other} was trained on" in capsys.readouterr().err


def test_the_command_line_scores_a_tagger(tmp_path):
    import json

    from mtat_tree import write_mtat_tree

    from genremert import load_magnatagatune
    from genremert.analysis.robustness import TAGGING_SCORES, main

    data = write_mtat_tree(tmp_path / "mtat")
    tags = load_magnatagatune(data)["test"].features["label"].feature.names
    names = dict(enumerate(tags))
    model = tiny_tagger(num_labels=len(tags), id2label=names, label2id={tag: i for i, tag in names.items()})
    folder = model_folder(tmp_path / "tagger", model, {"dataset": "magnatagatune", "data_dir": str(data)})
    code = main(["--model_dir", folder, "--output_dir", str(tmp_path / "out"), "--snr_db", "20", "--cutoff_hz",
                 "1000", "--steps", "2"])  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "out" / "robustness.json").read_text())["tagger"]
    curves = (results["pgd"]["20.0"], results["white_noise"]["20.0"], results["lowpass"]["1000.0"])
    for scores in (results["clean"], *curves):
        assert all(0.0 <= scores[key] <= 1.0 for key in TAGGING_SCORES), scores
    assert results["pgd"]["20.0"]["snr_reached_min"] >= 20.0 - 1e-3
    assert (tmp_path / "out" / "robustness.png").read_bytes().startswith(b"\x89PNG")


# ----------------------------------------------------------------------------------------------------------------------
# Progress: one line per condition, and results saved as the run goes
# ----------------------------------------------------------------------------------------------------------------------


def test_each_condition_prints_a_line_and_hands_over_the_results_so_far(tone_model, capsys):
    import copy

    snapshots = []
    results = robustness_curves(
        {"tones": tone_model}, tone_slices(2, seed=4), snrs=(30.0, 10.0), cutoffs=(1000.0,), steps=2,
        corruptions=("white_noise", "lowpass"), batch_size=4, on_condition=lambda r: snapshots.append(copy.deepcopy(r)),
    )  # fmt: skip
    # clean, 2 PGD budgets, 2 white-noise levels, 1 cutoff: one hand-over each, growing by one condition at a time
    assert [len(s["tones"]) + sum(len(v) - 1 for k, v in s["tones"].items() if k != "clean") for s in snapshots] == [
        1, 2, 3, 4, 5, 6,
    ]  # fmt: skip
    assert snapshots[0] == {"tones": {"clean": results["tones"]["clean"]}}
    assert snapshots[1]["tones"]["pgd"] == {"30.0": results["tones"]["pgd"]["30.0"]}
    assert snapshots[-1] == results
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("robustness [")]
    assert len(lines) == 6, lines
    assert lines[0].startswith("robustness [1/6] tones: clean, 6 slices in 2 batches: frame_accuracy ")
    assert lines[1].startswith("robustness [2/6] tones: pgd at 30 dB SNR, 6 slices in 2 batches: frame_accuracy ")
    assert lines[5].startswith("robustness [6/6] tones: lowpass at 1000 Hz, 6 slices")
    assert all("left)" in line for line in lines[:5]) and lines[5].endswith("done)")


def test_an_interrupted_command_line_keeps_the_conditions_that_finished(source_model, tmp_path, monkeypatch, capsys):
    import json

    from genremert.analysis import robustness

    attacked = []
    real_attack = robustness.pgd_attack

    def attack_then_interrupt(model, waveforms, labels, snr, *args):
        if snr == 10.0:  # the second budget: the user presses Ctrl-C
            raise KeyboardInterrupt
        attacked.append(snr)
        return real_attack(model, waveforms, labels, snr, *args)

    monkeypatch.setattr(robustness, "pgd_attack", attack_then_interrupt)
    run = str(source_model / "source")
    with pytest.raises(KeyboardInterrupt):
        robustness.main(["--model_dir", run, "--output_dir", str(tmp_path), "--snr_db", "30", "10", "--cutoff_hz",
                         "1000", "--steps", "1", "--max_slices", "4"])  # fmt: skip
    assert attacked and set(attacked) == {30.0}
    saved = json.loads((tmp_path / "robustness.json").read_text())
    assert set(saved["source"]) == {"clean", "pgd"} and list(saved["source"]["pgd"]) == ["30.0"]
    assert saved["source"]["pgd"]["30.0"]["snr_reached_min"] >= 30.0 - 1e-3
    assert not (tmp_path / "robustness.png").exists() and [p.name for p in tmp_path.iterdir()] == ["robustness.json"]
    error = capsys.readouterr().err
    # clean, 2 PGD budgets, 2 white and 2 band noise levels, 1 cutoff
    assert "robustness: 1 model(s) × 8 conditions on 4 test slices" in error, error
    assert "robustness [2/8] source: pgd at 30 dB SNR, 4 slices in 1 batch: frame_accuracy" in error, error
