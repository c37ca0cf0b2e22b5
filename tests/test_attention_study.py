"""The ground-truth attention study: frame roles, the attention-mass metric, the oracle arm, gradient diagnostics, the
λ search that never reads a test split, the inert-branch warning, and the sweep's paired intervals."""

import json
import math

import numpy as np
import pytest
import torch
from test_lca_trainer import _trainer
from tiny_configs import tiny_crnn_fgnl_config

from genremert import CRNNFGNLForAudioClassification, lca_loss_terms
from genremert.data import attention_benchmark as benchmark
from genremert.evaluation.attention_mass import attention_mass
from genremert.training import attention_study, experiments
from genremert.training.lca_loss import attention_parameter_groups, lca_gradient_norms


TINY = ["--num_train", "128", "--num_validation", "64", "--num_test", "64", "--num_train_epochs", "2"]


def test_frame_roles_and_features_of_a_hand_checked_case():
    config = benchmark.FrameBenchmarkConfig(
        num_classes=4, num_frames=6, dim=16, num_discriminative=2, num_spurious=1, noise_std=0.0, num_train=8
    )
    split = benchmark.make_split(config, "train")
    world = benchmark.world_directions(config)
    assert split.features.shape == (8, 6, 16) and split.frame_roles.shape == (8, 6)
    assert (split.role_mask("discriminative").sum(axis=1) == 2).all()
    assert (split.role_mask("spurious").sum(axis=1) == 1).all()
    for row in range(8):
        for frame in range(6):
            x = split.features[row, frame]
            role = benchmark.FRAME_ROLES[split.frame_roles[row, frame]]
            if role == "discriminative":
                expected = (
                    config.marker_strength * world["markers"][0]
                    + config.class_strength * world["classes"][split.labels[row]]
                )
            elif role == "spurious":
                expected = (
                    config.marker_strength * world["markers"][1] + config.cue_strength * world["cues"][split.cues[row]]
                )
            else:
                expected = np.zeros(16)
            np.testing.assert_allclose(x, expected, atol=1e-6)
            assert abs(x.mean()) < 1e-6  # a frame's mean tells nothing of its role
    # shared: cues span two classes
    assert config.num_cues == 2 and (split.cue_agrees == (split.cues == split.labels // 2)).all()


@pytest.mark.parametrize("structure", ["shared", "exclusive"])
def test_the_test_splits_have_the_promised_cue_agreement(structure):
    config = benchmark.FrameBenchmarkConfig(bias_structure=structure, rho=0.8, num_train=4000, num_test=4000)
    assert abs(benchmark.make_split(config, "train").cue_agrees.mean() - 0.8) < 0.03
    assert abs(benchmark.make_split(config, "in_distribution").cue_agrees.mean() - 0.8) < 0.03
    assert abs(benchmark.make_split(config, "decorrelated").cue_agrees.mean() - 1 / config.num_cues) < 0.03
    assert benchmark.make_split(config, "anti_correlated").cue_agrees.sum() == 0
    # a pure function of (config, split): the training seed never moves the data
    np.testing.assert_array_equal(
        benchmark.make_split(config, "validation").features, benchmark.make_split(config, "validation").features
    )


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="bias_structure"):
        benchmark.FrameBenchmarkConfig(bias_structure="both")
    with pytest.raises(ValueError, match="exceeds num_frames"):
        benchmark.FrameBenchmarkConfig(num_frames=6, num_discriminative=4, num_spurious=4)
    with pytest.raises(ValueError, match="rho"):
        benchmark.FrameBenchmarkConfig(rho=1.5)


def test_attention_mass_on_a_known_attention():
    roles = np.array([[0, 1, 2, 1], [2, 2, 0, 1]])
    attention = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.25, 0.25, 0.0]])
    masses = attention_mass(attention, roles)
    assert masses["discriminative"] == pytest.approx((0.6 + 0.0) / 2)
    assert masses["spurious"] == pytest.approx((0.3 + 0.75) / 2)
    assert masses["filler"] == pytest.approx((0.1 + 0.25) / 2)
    with pytest.raises(ValueError, match="one shape"):
        attention_mass(attention[:, :3], roles)


def test_the_oracle_arm_really_fixes_the_attention(tmp_path):
    results = attention_study.main(["--output_dir", str(tmp_path / "o"), "--attention_arm", "oracle", *TINY])
    for split in ("eval_", "decorrelated_", "anti_correlated_"):
        assert results[f"{split}main_mass_discriminative"] == pytest.approx(1.0)
        assert results[f"{split}main_mass_spurious"] == 0.0
    floor = attention_study.main(["--output_dir", str(tmp_path / "s"), "--attention_arm", "shortcut", *TINY])
    assert floor["decorrelated_main_mass_spurious"] == pytest.approx(1.0)
    with pytest.raises(SystemExit):  # a fixed attention and LCA cannot go together
        attention_study.parse_arguments(
            ["--output_dir", "x", "--attention_arm", "oracle", "--counterfactual", "learned"]
        )


def test_an_lca_run_reports_both_branches_and_the_gradient_norms(tmp_path):
    results = attention_study.main(["--output_dir", str(tmp_path / "l"), "--counterfactual", "learned", *TINY])
    for key in ("decorrelated_cf_accuracy", "decorrelated_cf_mass_spurious", "in_distribution_accuracy"):
        assert 0.0 <= results[key] <= 1.0, key
    history = json.loads((tmp_path / "l" / "history.json").read_text())
    assert len(history) == 2
    # The warm-up (3 epochs by default): only CE(y) has weight, so only its gradient is logged, and none of it reaches
    # the counterfactual branch.
    logged = {key for key in history[0] if key.startswith("lca_grad_")}
    assert logged == {
        "lca_grad_ce_main_attention",
        "lca_grad_ce_main_rest",
        "lca_grad_ce_main_counterfactual_attention",
    }
    assert (
        history[0]["lca_grad_ce_main_counterfactual_attention"] == 0.0 and history[0]["lca_grad_ce_main_attention"] > 0
    )
    after = attention_study.main(
        ["--output_dir", str(tmp_path / "m"), "--counterfactual", "learned", "--cf_warmup_epochs", "0", *TINY]
    )
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert "lca_grad_att_counterfactual_attention" in history[0] and "lca_grad_ent_main_attention" in history[0]
    assert after["eval_main_mass_discriminative"] + after["eval_main_mass_spurious"] <= 1.0 + 1e-6
    assert list((tmp_path / "m" / "runs").iterdir())  # TensorBoard logs


def test_gradient_norms_match_a_hand_computed_gradient():
    weight = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
    other = torch.nn.Parameter(torch.tensor([0.3, -0.3]))
    features = torch.tensor([[1.0, 2.0]])
    logits = features @ weight + other  # (1, 2)
    terms = lca_loss_terms(logits, torch.tensor([0]))
    norms = lca_gradient_norms(terms, {"ce_main": 2.0, "ent_main": 0.0}, {"attention": [weight], "rest": [other]})
    gradient_weight, gradient_other = torch.autograd.grad(2.0 * terms["ce_main"], [weight, other])
    assert norms["lca_grad_ce_main_attention"] == pytest.approx(float(gradient_weight.norm()))
    assert norms["lca_grad_ce_main_rest"] == pytest.approx(float(gradient_other.norm()))
    assert set(norms) == {"lca_grad_ce_main_attention", "lca_grad_ce_main_rest"}  # a zero weight is left out


def test_lca_trainer_logs_the_gradient_norms_when_asked(tmp_path):
    trainer = _trainer(tmp_path, epochs=2, warmup=1, log_lca_gradients=True)
    trainer.train()
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert "lca_grad_ce_main_attention" in logs[0] and "lca_grad_att_attention" not in logs[0]  # the warm-up
    assert all(math.isfinite(logs[1][key]) for key in ("lca_grad_att_counterfactual_attention", "lca_grad_ce_cf_rest"))
    quiet = _trainer(tmp_path, epochs=1, warmup=0, name="quiet")
    quiet.train()
    assert not any(key.startswith("lca_grad_") for log in quiet.state.log_history for key in log)
    groups = attention_parameter_groups(trainer.model)
    assert groups["counterfactual_attention"] and groups["attention"] and groups["rest"]


def test_a_query_axis_mose_branch_warns_that_lca_is_inert(tmp_path):
    model = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config(counterfactual="learned", fgnl_softmax_axis="query"))
    assert "inert" not in str(CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config(counterfactual="learned")))
    with pytest.warns(UserWarning, match="LCA is inert in this configuration: fgnl_softmax_axis='query'"):
        _trainer(tmp_path, model=model)
    assert model.inert_counterfactual_reason() is not None
    time_branch = tiny_crnn_fgnl_config(
        counterfactual="learned", fgnl_softmax_axis="query", counterfactual_attention="time"
    )
    assert CRNNFGNLForAudioClassification(time_branch).inert_counterfactual_reason() is None


def test_the_weight_search_never_reads_a_test_split(tmp_path, monkeypatch):
    asked = []
    real = attention_study.make_split

    def recording(config, split):
        asked.append(split)
        return real(config, split)

    monkeypatch.setattr(attention_study, "make_split", recording)
    chosen = attention_study.search_lca_weights(TINY, str(tmp_path), budget=3, search_seed=7, log=lambda m: None)
    assert set(asked) == {"train", "validation"}
    report = json.loads((tmp_path / "search.json").read_text())
    scores = [candidate["score"] for candidate in report["candidates"]]
    assert chosen == report["candidates"][int(np.argmax(scores))]["weights"]
    assert report["selected_on"] == "in-distribution validation accuracy" and chosen["ce_main"] == 1.0
    assert json.loads((tmp_path / "chosen_weights.json").read_text()) == chosen
    asked.clear()
    attention_study.search_lca_weights(TINY, str(tmp_path / "ub"), budget=1, select_on="decorrelated", log=print)
    assert "decorrelated" in asked
    assert "upper bound" in json.loads((tmp_path / "ub" / "search.json").read_text())["selected_on"]


def test_the_sweep_writes_attention_masses_with_paired_intervals(tmp_path):
    summary = experiments.main(
        ["--benchmark", "attention", "--variants", "plain,oracle", "--seeds", "0,1,2", "--output_dir", str(tmp_path)]
        + ["--"]
        + TINY
    )
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["seeds"] == [0, 1, 2]
    comparison = written["comparisons"]["oracle"]["decorrelated_main_mass_discriminative"]
    assert comparison["n"] == 3 and comparison["ci_low"] is not None
    assert "decorrelated_accuracy" in (tmp_path / "summary.md").read_text()
    assert summary["variants"]["oracle"]["metrics"]["eval_main_mass_discriminative"]["mean"] == pytest.approx(1.0)


def test_the_attention_sweep_defaults_to_ten_seeds(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(
        experiments,
        "run_all",
        lambda output_dir, variants, seeds, base, **kw: (
            seen.update(seeds=seeds) or {"baseline": "plain", "seeds": seeds, "variants": {}, "comparisons": {}}
        ),
    )
    experiments.main(["--benchmark", "attention", "--output_dir", str(tmp_path)])
    assert seen["seeds"] == list(range(10))


def test_quick_demo_prints_the_table_and_draws_the_masses(tmp_path, capsys):
    from genremert.demo import main

    result = main(["--quick", "--output_dir", str(tmp_path), "--seeds", "0,1"])
    printed = capsys.readouterr().out
    assert "accuracy, decorrelated test" in printed and "main attention on spurious frames" in printed
    assert "oracle vs plain: decorrelated accuracy" in printed and "lca vs plain" in printed
    assert (tmp_path / "attention_mass.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    oracle = result["summaries"]["shared"]["variants"]["oracle"]["metrics"]
    assert oracle["decorrelated_main_mass_discriminative"]["mean"] == pytest.approx(1.0)
