"""Paired initialisation: with one seed, plain / CAL / LCA models start from the same main weights and leave the same
random state (so a paired comparison compares the method, not two draws of the initial weights), and GenreMERT's layer
aggregation starts as the plain mean of its layers."""

import tempfile

import pytest
import torch

from modeling_crnn_fgnl import CRNNFGNLForAudioClassification
from modeling_genremert import GenreMERTForAudioClassification
from modeling_self_attention_tagger import SelfAttentionTaggerForAudioClassification
from tests.tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config, tiny_self_attention_tagger_config


MODELS = {
    "genremert": (GenreMERTForAudioClassification, tiny_genremert_config),
    "crnn_fgnl": (CRNNFGNLForAudioClassification, tiny_crnn_fgnl_config),
    "tagger": (SelfAttentionTaggerForAudioClassification, tiny_self_attention_tagger_config),
}


def _build(name, counterfactual, seed=0):
    model_class, make_config = MODELS[name]
    torch.manual_seed(seed)
    model = model_class(make_config(counterfactual=counterfactual))
    return model, torch.rand(4)  # the random state the model leaves behind


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_same_main_weights_with_and_without_the_branch(name):
    plain, plain_after = _build(name, "none")
    for counterfactual in ("learned", "random"):
        model, after = _build(name, counterfactual)
        state = model.state_dict()
        for key, value in plain.state_dict().items():
            assert torch.equal(state[key], value), f"{name} / {counterfactual}: {key} differs from the plain model's"
        assert torch.equal(after, plain_after), f"{name} / {counterfactual}: leaves another random state"
    learned, _ = _build(name, "learned")
    branch = dict(learned.counterfactual_branch.named_parameters())
    assert branch, "the learned branch has parameters"
    other_seed, _ = _build(name, "learned", seed=1)
    other_branch = dict(other_seed.counterfactual_branch.named_parameters())
    assert any(not torch.equal(value, other_branch[key]) for key, value in branch.items()), "branch ignores the seed"


def test_branch_is_initialised_when_missing_from_a_plain_checkpoint():
    plain, _ = _build("crnn_fgnl", "none")
    with tempfile.TemporaryDirectory() as folder:
        plain.save_pretrained(folder)
        learned = CRNNFGNLForAudioClassification.from_pretrained(folder, counterfactual="learned")
    for key, value in plain.state_dict().items():
        assert torch.equal(learned.state_dict()[key], value), key
    for key, value in learned.counterfactual_branch.named_parameters():
        assert torch.isfinite(value).all() and value.abs().sum() > 0, f"branch parameter {key} not initialised"


def test_genremert_layer_aggregation_starts_as_the_layer_mean():
    torch.manual_seed(0)
    model = GenreMERTForAudioClassification(tiny_genremert_config(aggregation_layers=[0, 1, 2]))
    weight = model.layer_aggregation.conv.weight.flatten()
    assert torch.allclose(weight, torch.full((3,), 1 / 3)), weight
    assert torch.count_nonzero(model.layer_aggregation.conv.bias) == 0
