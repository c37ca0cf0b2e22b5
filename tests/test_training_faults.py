"""Faults of training preparation and sweeps, each refused before anything trains: a transfer from weights that do not
match their config, a tagger's song rule carried into a single-label model, and sweep variants or seeds that would
fail late, write outside the sweep folder or count a run twice."""

import json
import logging
import os
import re

import pytest
import torch
from tiny_configs import tiny_crnn_fgnl_config, tiny_self_attention_tagger_config

from genremert import MODEL_CLASSES, ModelArguments
from genremert.training import attention_study, experiments
from genremert.training import run as run_module
from genremert.training.preparation import load_or_build_model


SOURCE_LABELS = ["rock", "piano", "vocal"]


# ----------------------------------------------------------------------------------------------------------------------
# Transfer learning (--finetune)
# ----------------------------------------------------------------------------------------------------------------------


def save_crnn(folder, **config):
    torch.manual_seed(0)
    model = MODEL_CLASSES["crnn_fgnl"][1](
        tiny_crnn_fgnl_config(num_labels=3, id2label=dict(enumerate(SOURCE_LABELS)), **config)
    )
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("mode", ["head", "all"])
def test_transfer_refuses_weights_that_do_not_match_their_config(tmp_path, mode):
    source = save_crnn(tmp_path / "good")
    arguments = ModelArguments(model_type="crnn_fgnl", model_name_or_path=str(tmp_path / "good"), finetune=mode)
    model = load_or_build_model(arguments, ["a", "b"], None)  # a new classifier size is what a transfer is for
    assert model.output_classifier().weight.shape == (2, 8)
    torch.testing.assert_close(model.recurrent.gru_1.weight_ih_l0, source.recurrent.gru_1.weight_ih_l0)

    save_crnn(tmp_path / "bad")
    config_file = tmp_path / "bad" / "config.json"
    config = json.loads(config_file.read_text())
    config["gru_hidden_size"] = 6  # the saved GRUs have 8 units: the weights no longer match their config
    config_file.write_text(json.dumps(config))
    arguments.model_name_or_path = str(tmp_path / "bad")
    with pytest.raises(ValueError) as caught:
        load_or_build_model(arguments, ["a", "b"], None)
    message = str(caught.value)
    assert f"--model_name_or_path {tmp_path / 'bad'} (--finetune {mode})" in message
    assert "crnn_fgnl.recurrent.gru_1.weight_ih_l0: checkpoint (24, 32), config.json (18, 32)" in message
    assert "crnn_fgnl.recurrent.gru_2.weight_hh_l0: checkpoint (24, 8), config.json (18, 6)" in message
    assert "8 tensor(s)" in message and "Only the output classifier (head.classifier.bias" in message


@pytest.mark.parametrize("model_type", ["crnn_fgnl", "self_attention_tagger"])
def test_a_tagger_transferred_to_classes_scores_songs_by_vote(tmp_path, model_type, caplog):
    tiny = {"crnn_fgnl": tiny_crnn_fgnl_config, "self_attention_tagger": tiny_self_attention_tagger_config}[model_type]
    config = tiny(
        num_labels=3,
        id2label=dict(enumerate(SOURCE_LABELS)),
        problem_type="multi_label_classification",
        song_aggregation="mean",
    )
    torch.manual_seed(0)
    MODEL_CLASSES[model_type][1](config).save_pretrained(tmp_path / "tagger")
    arguments = ModelArguments(model_type=model_type, model_name_or_path=str(tmp_path / "tagger"), finetune="head")
    with caplog.at_level(logging.INFO, logger="genremert.training.preparation"):
        model = load_or_build_model(arguments, ["blues", "jazz"], None, multi_label=False)
    assert model.config.problem_type == "single_label_classification"
    assert (model.config.song_aggregation, model.config.vote_threshold) == ("vote", None)
    assert any(
        "song_aggregation='mean'" in r.message and "song_aggregation='vote'" in r.message for r in caplog.records
    )
    model.save_pretrained(tmp_path / "classes")
    saved = json.loads((tmp_path / "classes" / "config.json").read_text())
    assert saved["song_aggregation"] == "vote" and saved["vote_threshold"] is None


# ----------------------------------------------------------------------------------------------------------------------
# Sweeps (run_experiments.py)
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_runs(monkeypatch):
    """Stands in for run_classification.py and the attention study: records each run and writes its results."""
    calls = []

    def run(argv):
        calls.append(list(argv))
        output_dir = argv[argv.index("--output_dir") + 1]
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "all_results.json"), "w") as handle:
            json.dump({"test_song_f1": 0.5, "decorrelated_accuracy": 0.5}, handle)
        return {}

    monkeypatch.setattr(run_module, "main", run)
    monkeypatch.setattr(attention_study, "main", run)
    monkeypatch.setattr(attention_study, "search_lca_weights", lambda *args, **kwargs: calls.append(["search"]))
    return calls


def sweep(tmp_path, variants: dict, *flags, base=("--dataset", "synthetic")):
    variants_file = tmp_path / "variants.json"
    variants_file.write_text(json.dumps(variants))
    argv = ["--variants_file", str(variants_file), "--seeds", "0", "--output_dir", str(tmp_path / "out"), *flags]
    return experiments.main([*argv, "--", *base]), variants_file


def test_an_unknown_flag_in_a_variants_file_stops_the_sweep_before_its_first_run(tmp_path, fake_runs):
    with pytest.raises(ValueError) as caught:
        sweep(tmp_path, {"mine": {"lambda_atention": 0.5}}, "--variants", "plain,mine")
    message = str(caught.value)
    assert f"variant 'mine' (--variants_file {tmp_path / 'variants.json'})" in message
    assert "--lambda_atention is not a flag of run_classification.py" in message
    assert fake_runs == [] and not (tmp_path / "out" / "plain").exists()


def test_a_bad_value_or_a_sweep_flag_in_a_variant_is_refused_before_any_run(tmp_path, fake_runs):
    with pytest.raises(ValueError, match=r"variant 'mine' \(--variants_file .*variants.json, flags --counterfactual "
                       r"sometimes\): run_classification.py refuses .*invalid choice: 'sometimes'"):  # fmt: skip
        sweep(tmp_path, {"mine": {"counterfactual": "sometimes"}}, "--variants", "plain,mine")
    with pytest.raises(ValueError, match=r"variant 'mine' .*: --seed is set by the sweep for each run"):
        sweep(tmp_path, {"mine": {"seed": 5}}, "--variants", "plain,mine")
    with pytest.raises(ValueError, match=r"the arguments after `--` \(--dataset synthetic --not_a_flag 1\) are "
                       r"refused by run_classification.py: .*'--not_a_flag', '1'"):  # fmt: skip
        sweep(tmp_path, {}, "--variants", "plain,lca", base=("--dataset", "synthetic", "--not_a_flag", "1"))
    assert fake_runs == []


def test_an_attention_variant_is_parsed_by_the_attention_study_before_the_search_and_the_runs(tmp_path, fake_runs):
    with pytest.raises(ValueError) as caught:
        sweep(
            tmp_path,
            {"mine": {"counterfactual": "learned", "rho_train": 0.5}},
            "--benchmark",
            "attention",
            "--variants",
            "plain,mine",
            "--search_lca_weights",
            "2",
            base=(),
        )
    assert "variant 'mine' (--variants_file" in str(caught.value)
    assert "--rho_train is not a flag of genremert.training.attention_study" in str(caught.value)
    with pytest.raises(ValueError, match=r"variant 'mine' .*attention_study refuses .*--attention_arm oracle fixes"):
        sweep(
            tmp_path,
            {"mine": {"counterfactual": "learned", "attention_arm": "oracle"}},
            "--benchmark",
            "attention",
            "--variants",
            "plain,mine",
            base=(),
        )
    assert fake_runs == []  # neither the λ search nor a run started
    summary, _ = sweep(
        tmp_path, {"mine": {"rho": 0.8}}, "--benchmark", "attention", "--variants", "plain,mine", base=()
    )
    assert set(summary["variants"]) == {"plain", "mine"} and len(fake_runs) == 2


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", ".hidden", "", "..", "a b"])
def test_a_variant_name_must_be_a_plain_folder_name(tmp_path, fake_runs, name):
    variants_file = tmp_path / "variants.json"
    variants_file.write_text(json.dumps({"lca.v2-b_1": {"counterfactual": "learned"}, name: {"lambda_att": 0.5}}))
    with pytest.raises(ValueError) as caught:
        experiments.load_variants(["plain", "lca.v2-b_1"], str(variants_file))
    assert f"variant {name!r} (--variants_file {variants_file})" in str(caught.value)
    assert "letters, digits, '_', '-' and '.' (not first)" in str(caught.value)
    with pytest.raises(ValueError, match=re.escape(f"variant {name!r} (run_all)")):
        experiments.run_all(str(tmp_path / "out"), {name: {}}, [0], [], runner=fake_runs.append)
    assert fake_runs == [] and sorted(os.listdir(tmp_path)) == ["variants.json"]
    variants_file.write_text(json.dumps({"lca.v2-b_1": {"counterfactual": "learned"}}))
    assert experiments.load_variants(["lca.v2-b_1"], str(variants_file)) == {
        "lca.v2-b_1": {"counterfactual": "learned"}
    }


@pytest.mark.parametrize(
    "seeds, expected",
    [("0,0", "--seeds '0,0' repeats seed(s) [0]"), ("1,2,1", "repeats seed(s) [1]"), ("", "--seeds '' names no seed")],
)
def test_repeated_or_no_seeds_are_refused(tmp_path, fake_runs, capsys, seeds, expected):
    argv = ["--variants", "plain", "--seeds", seeds, "--output_dir", str(tmp_path / "out"), "--"]
    with pytest.raises(SystemExit):
        experiments.main(argv)
    assert expected in capsys.readouterr().err
    assert fake_runs == []
    with pytest.raises(ValueError, match=r"seeds \[3, 3\] repeat \[3\]"):
        experiments.run_all(str(tmp_path / "out"), {"plain": {}}, [3, 3], [], runner=fake_runs.append)
    assert fake_runs == []
