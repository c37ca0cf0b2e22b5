"""The faster CRNN_FGNL training step computes what the previous implementation computed (to float rounding).

Two references, because CI has no earlier commit to import:

- `tests/fixtures/crnn_fgnl_step_reference.safetensors`: weights, a seeded batch, and the outputs and every parameter's
  gradient that `modeling_crnn_fgnl.py` at f856578 (before the speed-up) gave for tiny configs (plain, the paper's
  LCA, time-attention LCA, the query-axis softmax); dropout is off there, because CPU dropout masks depend on the CPU
  vendor (MKL's generator on Intel, PyTorch's elsewhere). Regenerate with
  `python tests/test_crnn_speed_equivalence.py --reference f856578` (reads the file from git).
- the previous forward of the two rewritten sub-computations, kept below (`reference_non_local`,
  `reference_conv_block`), swapped into a model of the default size, with dropout on and one seed for both.
"""

import copy
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F


TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent)]  # as conftest.py does; also when run as a script (see the docstring)
from tiny_configs import tiny_crnn_fgnl_config  # noqa: E402

import modeling_crnn_fgnl  # noqa: E402
from configuration_genremert import CRNNFGNLConfig  # noqa: E402


FIXTURE = TESTS / "fixtures" / "crnn_fgnl_step_reference.safetensors"
# Tiny configs of the fixture: dropout 0, so that no random mask enters the stored figures.
FIXTURE_CASES = {
    "plain": dict(),
    "lca_mose": dict(counterfactual="learned"),
    "lca_time": dict(counterfactual="learned", counterfactual_attention="time"),
    "query_softmax": dict(fgnl_softmax_axis="query"),
}
OUTPUT_FIELDS = ("logits", "counterfactual_logits", "attention", "counterfactual_attention")
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def fixture_config(case: str) -> CRNNFGNLConfig:
    return tiny_crnn_fgnl_config(conv_dropout=0.0, classifier_dropout=0.0, **FIXTURE_CASES[case])


def step_loss(output, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, plus (with a counterfactual branch) terms that send gradient through the counterfactual logits
    and both attentions; fixed here so that the fixture does not depend on the LCA loss code."""
    loss = output.loss
    if output.counterfactual_logits is not None:
        loss = loss + F.cross_entropy(output.counterfactual_logits, labels)
        loss = loss - (output.attention - output.counterfactual_attention).abs().mean()
    return loss


def train_step_figures(model, input_values, attention_mask, labels) -> dict[str, torch.Tensor]:
    """Outputs, parameter gradients and updated BatchNorm statistics of one train-mode forward + backward."""
    model.train()
    model.zero_grad(set_to_none=True)
    output = model(input_values=input_values, attention_mask=attention_mask, labels=labels)
    step_loss(output, labels).backward()
    figures = {f"output.{field}": output[field].detach() for field in OUTPUT_FIELDS if output.get(field) is not None}
    figures.update({f"grad.{name}": p.grad.detach() for name, p in model.named_parameters() if p.grad is not None})
    figures.update({f"buffer.{name}": b.detach() for name, b in model.named_buffers() if name.endswith("running_var")})
    return figures


def resolve(stored_name: str, names) -> str:
    """The model's name for a stored parameter/buffer name: equal, or the stored one under a prefix (a base model's
    `base_model_prefix`, should the modules move under one)."""
    import re

    from modeling_crnn_fgnl import CRNNFGNLForAudioClassification

    for pattern, replacement in CRNNFGNLForAudioClassification._legacy_key_mapping.items():  # the fixture's flat layout
        stored_name = re.sub(pattern, replacement, stored_name)
    matches = [name for name in names if name == stored_name or name.endswith("." + stored_name)]
    if len(matches) != 1:
        raise KeyError(
            f"{FIXTURE.name}: {stored_name!r} matches {len(matches)} model names ({matches[:3]}), expected 1."
        )
    return matches[0]


def build_from_fixture(case: str, stored: dict[str, torch.Tensor]):
    model = modeling_crnn_fgnl.CRNNFGNLForAudioClassification(fixture_config(case))
    prefix = f"{case}.state."
    own_names = list(model.state_dict())
    state = {resolve(key[len(prefix) :], own_names): value for key, value in stored.items() if key.startswith(prefix)}
    model.load_state_dict(state, strict=True)
    return model


@pytest.fixture(scope="module")
def stored() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE)


@pytest.mark.parametrize("case", list(FIXTURE_CASES))
def test_tiny_step_matches_the_previous_implementation(stored, case):
    model = build_from_fixture(case, stored)
    attention_mask = stored["attention_mask"].long()  # stored as bool
    figures = train_step_figures(model, stored["input_values"], attention_mask, stored["labels"])
    expected = {key[len(case) + 1 :]: value for key, value in stored.items() if key.startswith(f"{case}.")}
    expected = {key: value for key, value in expected.items() if not key.startswith("state.")}
    parameter_names = [name for name, _ in model.named_parameters()]
    buffer_names = [name for name, _ in model.named_buffers()]
    compared = 0
    for key, value in expected.items():
        kind, name = key.split(".", 1)
        if kind == "grad":
            name = resolve(name, parameter_names)
        elif kind == "buffer":
            name = resolve(name, buffer_names)
        torch.testing.assert_close(figures[f"{kind}.{name}"], value, **TOLERANCE, msg=lambda m: f"{case} {key}: {m}")
        compared += 1
    assert sum(key.startswith("grad.") for key in figures) == sum(key.startswith("grad.") for key in expected)
    assert compared > 20  # every parameter's gradient, the outputs and the BatchNorm statistics


# ----------------------------------------------------------------------------------------------------------------------
# The previous forward of the rewritten sub-computations, at the default size
# ----------------------------------------------------------------------------------------------------------------------


def reference_non_local(module, last: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """The previous `CRNNFGNLNonLocal.forward`: per roll k, the affinity θ·roll(φ, k)ᵀ, its softmax, times g."""
    theta = module._embed(module.theta, last)  # (batch, N4, C')
    phi = torch.cat([module._embed(module.phi_last, last), module._embed(module.phi_previous, previous)], dim=1)
    g = torch.cat([module._embed(module.g_last, last), module._embed(module.g_previous, previous)], dim=1)
    softmax_dim = 2 if module.softmax_over_keys else 1
    rolls = []
    for shift in range(module.num_rolls):
        affinity = torch.bmm(theta, torch.roll(phi, shifts=shift, dims=2).transpose(1, 2))  # (batch, N4, Nk)
        affinity = affinity.float().softmax(dim=softmax_dim).to(affinity.dtype)
        rolls.append(torch.bmm(affinity, g))  # (batch, N4, C')
    return torch.stack(rolls, dim=-1)  # (batch, N4, C', K)


def reference_conv_block(block, hidden_states: torch.Tensor) -> torch.Tensor:
    """The previous `CRNNFGNLConvBlock.forward`: ELU and dropout out of place."""
    hidden_states = block.norm(F.elu(block.conv(hidden_states)))
    return F.dropout(block.pool(hidden_states), block.dropout.p, block.training)


def with_reference_computations(model):
    """A copy of `model` whose FGNL block and conv blocks run the previous forward."""
    reference = copy.deepcopy(model)
    reference.non_local.forward = types.MethodType(reference_non_local, reference.non_local)
    for block in reference.conv_blocks:
        block.forward = types.MethodType(reference_conv_block, block)
    return reference


@pytest.mark.parametrize("counterfactual", ["none", "learned"])
def test_default_size_step_matches_the_previous_computation(counterfactual):
    # The default config (128 mels, 64/128/128/128 channels, C' = 4, 4 rolls) on 1 s; dropout on, one seed for both.
    torch.manual_seed(0)
    model = modeling_crnn_fgnl.CRNNFGNLForAudioClassification(
        CRNNFGNLConfig(num_labels=20, counterfactual=counterfactual)
    )
    reference = with_reference_computations(model)
    generator = torch.Generator().manual_seed(1)
    input_values = 0.1 * torch.randn(2, 16000, generator=generator)
    labels = torch.tensor([3, 7])
    figures = []
    for candidate in (model, reference):
        torch.manual_seed(2)
        figures.append(train_step_figures(candidate, input_values, None, labels))
    new, old = figures
    assert new.keys() == old.keys() and sum(key.startswith("grad.") for key in new) == len(list(model.parameters()))
    for key in new:
        torch.testing.assert_close(new[key], old[key], **TOLERANCE, msg=lambda m: f"{key}: {m}")


@pytest.mark.parametrize("softmax_axis", ["key", "query"])
def test_non_local_matches_the_roll_loop_at_the_five_second_shape(softmax_axis):
    # The FGNL block's inputs at 5 s (N4 = 16 × 19 queries, N4 + N3 = 304 + 1248 keys), with gradients to both.
    torch.manual_seed(0)
    module = modeling_crnn_fgnl.CRNNFGNLNonLocal(CRNNFGNLConfig(fgnl_softmax_axis=softmax_axis))
    last = torch.randn(2, 128, 16, 19, requires_grad=True)
    previous = torch.randn(2, 128, 32, 39, requires_grad=True)
    weights = torch.randn(2, 16 * 19, 4, 4)  # a loss that weighs every roll differently
    results = []
    for forward in (module.forward, lambda a, b: reference_non_local(module, a, b)):
        rolls = forward(last, previous)
        gradients = torch.autograd.grad((rolls * weights).sum(), [last, previous, *module.parameters()])
        results.append((rolls, gradients))
    (rolls, gradients), (expected_rolls, expected_gradients) = results
    assert rolls.shape == (2, 16 * 19, 4, 4)
    torch.testing.assert_close(rolls, expected_rolls, **TOLERANCE)
    for gradient, expected in zip(gradients, expected_gradients):
        torch.testing.assert_close(gradient, expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------------
# Regenerating the fixture
# ----------------------------------------------------------------------------------------------------------------------


def write_fixture(reference_revision: str, path: Path = FIXTURE) -> None:
    """Runs `modeling_crnn_fgnl.py` as stored at `reference_revision` (git) on seeded weights and inputs, and saves the
    weights, the inputs and its figures to `path`."""
    import subprocess

    source = subprocess.run(
        ["git", "-C", str(TESTS.parent), "show", f"{reference_revision}:modeling_crnn_fgnl.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    reference = types.ModuleType("modeling_crnn_fgnl_reference")
    sys.modules[reference.__name__] = reference  # Transformers resolves the class annotations through sys.modules
    exec(compile(source, f"{reference_revision}:modeling_crnn_fgnl.py", "exec", dont_inherit=True), reference.__dict__)
    generator = torch.Generator().manual_seed(0)
    input_values = 0.1 * torch.randn(3, 8000, generator=generator)  # 0.5 s at 16 kHz
    attention_mask = torch.ones(3, 8000, dtype=torch.long)
    attention_mask[2, 6000:] = 0  # one padded row: the GRU state is read at its last valid frame
    input_values[2, 6000:] = 0.0
    labels = torch.tensor([0, 1, 2])
    tensors = {"input_values": input_values, "attention_mask": attention_mask.bool(), "labels": labels}
    for case in FIXTURE_CASES:
        torch.manual_seed(0)
        model = reference.CRNNFGNLForAudioClassification(fixture_config(case))
        tensors.update({f"{case}.state.{key}": value.clone() for key, value in model.state_dict().items()})
        figures = train_step_figures(model, input_values, attention_mask, labels)
        tensors.update({f"{case}.{key}": value.contiguous() for key, value in figures.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"generated_from": f"{reference_revision}:modeling_crnn_fgnl.py", "torch": torch.__version__}
    save_file(tensors, path, metadata=metadata)
    print(f"wrote {len(tensors)} tensors to {path}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Regenerate the fixture of this test from an earlier revision.")
    parser.add_argument("--reference", required=True, help="git revision of modeling_crnn_fgnl.py (e.g. f856578)")
    write_fixture(parser.parse_args().reference)
