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
