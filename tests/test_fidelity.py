"""Paper fidelity: the paper presets are the official setup, each deviation of ours is a named switch, and each
switch does what it says."""

import glob
import json
import math
from pathlib import Path

import pytest
import torch
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config

from genremert import (
    CRNNFGNLForAudioClassification,
    GenreMERTForAudioClassification,
    LCATrainer,
    LCATrainingArguments,
    SliceCollator,
    build_feature_extractor,
    parse_arguments,
)
from genremert.training.preparation import build_config


REPO = Path(__file__).resolve().parent.parent
PRESETS = sorted(glob.glob(str(REPO / "configs" / "*.json")))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda path: Path(path).stem)
def test_every_preset_parses_and_builds_its_model_config(preset, tmp_path):
    argv = [preset, "--output_dir", str(tmp_path)]
    dataset = json.loads(Path(preset).read_text()).get("dataset", "")
    if "artist20" in preset or dataset in ("gtzan", "magnatagatune"):
        argv += ["--data_dir", str(tmp_path)]
    model_args, data_args, training_args = parse_arguments(argv)
    tagging = dataset == "magnatagatune"
    config = build_config(model_args, ["a", "b", "c"], data_args.slice_seconds, multi_label=tagging)
    assert config.counterfactual == model_args.counterfactual
    assert (config.problem_type == "multi_label_classification") == tagging
    # The paper presets are the official setups; `ours_*` and the tagging presets (no paper tags with LCA) are ours.
    paper = not Path(preset).stem.startswith("ours_") and not tagging
    if paper:
        assert training_args.max_grad_norm == 0.0  # neither the paper nor the reference clips gradients
        if model_args.counterfactual != "none":
            assert training_args.cf_warmup_mode == "zero_gradients" and training_args.cf_warmup_epochs == 20
    if config.model_type == "crnn_fgnl":
        if paper:  # the official TensorFlow model
            assert config.fgnl_softmax_axis == "query" and config.initialization == "keras"
            assert (config.classifier_kernel_l2, config.classifier_activity_l1) == (0.01, 0.01)
            assert (config.batch_norm_momentum, config.batch_norm_eps) == (0.01, 0.001)
            assert config.random_attention == "raw" and data_args.vote_threshold == "0.5"
            assert training_args.adam_epsilon == 1e-7
        else:  # ours, named as such
            assert config.fgnl_softmax_axis == "key" and config.counterfactual_attention == "time"
    elif paper and model_args.counterfactual == "none":
        assert config.classifier_dropout == 0.0  # the reference's plain genreMERT trains without main dropout


def test_keras_batch_norm_and_initialisation():
    model = CRNNFGNLForAudioClassification(
        tiny_crnn_fgnl_config(initialization="keras", batch_norm_momentum=0.01, batch_norm_eps=1e-3)
    )
    assert model.input_norm.momentum == 0.01 and model.input_norm.eps == 1e-3
    assert all(block.norm.momentum == 0.01 and block.norm.eps == 1e-3 for block in model.conv_blocks)
    weight = model.head.classifier.weight  # glorot_uniform: |w| <= sqrt(6 / (fan_in + fan_out)), zero bias
    assert weight.abs().max() <= math.sqrt(6 / sum(weight.shape)) and torch.all(model.head.classifier.bias == 0)
    recurrent = model.recurrent.gru_1.weight_hh_l0  # (3·hidden, hidden), orthogonal columns
    torch.testing.assert_close(recurrent.T @ recurrent, torch.eye(recurrent.shape[1]), atol=1e-5, rtol=0)
    assert torch.all(model.recurrent.gru_1.bias_ih_l0 == 0)
    default = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config())
    assert default.input_norm.momentum == 0.1 and default.head.classifier.bias.abs().sum() > 0


def test_keras_penalties_against_hand_values():
    model = CRNNFGNLForAudioClassification(
        tiny_crnn_fgnl_config(classifier_kernel_l2=0.01, classifier_activity_l1=0.01)
    )
    model.eval()
    inputs, labels = 0.1 * torch.randn(2, 16000), torch.tensor([0, 1])
    output = model(inputs, labels=labels)
    by_hand = 0.01 * model.head.classifier.weight.square().sum() + 0.01 * output.logits.abs().sum(-1).mean()
    torch.testing.assert_close(model.regularization_loss(output.logits), by_hand)
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(output.logits, labels) + by_hand)
    plain = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config())
    assert float(plain.regularization_loss(output.logits)) == 0.0


def test_raw_random_attention_is_cal_and_the_reference():
    torch.manual_seed(0)
    model = GenreMERTForAudioClassification(tiny_genremert_config(counterfactual="random", random_attention="raw"))
    model.train()
    output = model(0.1 * torch.randn(2, 12000))
    weights = output.counterfactual_attention
    assert weights.min() >= 0 and weights.max() < 2 and not torch.allclose(weights.sum(-1), torch.ones(2))
    assert weights.sum(-1).mean() > 10  # ~ the number of frames: unnormalised uniform [0, 2)


@pytest.mark.parametrize("mode", ["freeze", "zero_gradients"])
def test_warm_up_mode_decides_whether_the_optimizer_steps_the_branch(tmp_path, mode):
    from datasets import Dataset

    torch.manual_seed(0)
    model = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config(counterfactual="learned"))
    rows = [{"input_values": (0.1 * torch.randn(8000)).tolist(), "label": i % 3, "song_id": f"s{i}"} for i in range(8)]
    dataset = Dataset.from_list(rows)
    args = LCATrainingArguments(
        output_dir=str(tmp_path),
        report_to=[],
        num_train_epochs=1,
        cf_warmup_epochs=1,
        cf_warmup_mode=mode,
        per_device_train_batch_size=4,
        save_strategy="no",
        use_cpu=True,
        remove_unused_columns=False,
        label_names=["labels", "song_index"],
        disable_tqdm=True,
    )
    collator = SliceCollator(build_feature_extractor(model.config), {f"s{i}": i for i in range(8)})
    before = [p.detach().clone() for p in model.counterfactual_parameters()]
    trainer = LCATrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    trainer.train()
    after = list(model.counterfactual_parameters())
    assert all(torch.equal(a, b) for a, b in zip(after, before))  # the warm-up never moves the branch
    states = [trainer.optimizer.state.get(p, {}) for p in after]
    if mode == "freeze":
        assert all("step" not in state for state in states)  # skipped by Adam
    else:
        assert all(int(state["step"]) == 2 for state in states)  # stepped on zero gradients, as the reference
