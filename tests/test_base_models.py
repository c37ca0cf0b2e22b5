"""The base models (`GenreMERTModel`, `CRNNFGNLModel`, `SelfAttentionTaggerModel`): in `AutoModel`, the embedding the
classifier pools, a classifier folder ↔ base folder round trip through `base_model_prefix`, the legacy flat layout,
and the ONNX export of each classifier (when onnxscript is installed)."""

import importlib.util
import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config, tiny_self_attention_tagger_config
from transformers import AutoModel

import genremert


MODELS = {
    "genremert": (genremert.GenreMERTForAudioClassification, tiny_genremert_config, 24000),
    "crnn_fgnl": (genremert.CRNNFGNLForAudioClassification, tiny_crnn_fgnl_config, 16000),
    "self_attention_tagger": (
        genremert.SelfAttentionTaggerForAudioClassification,
        tiny_self_attention_tagger_config,
        16000,
    ),
}
CASES = [(name, counterfactual) for name in MODELS for counterfactual in ("none", "learned")]


def build(name, counterfactual="none"):
    model_class, make_config, rate = MODELS[name]
    torch.manual_seed(0)
    model = model_class(make_config(counterfactual=counterfactual)).eval()
    waveform = torch.randn(2, int(rate * model.config.slice_seconds), generator=torch.Generator().manual_seed(1))
    return model, waveform


def head_logits(classifier, pooled):
    """The classifier's logits from the base model's pooled embedding (what the head does with it in eval mode)."""
    if hasattr(classifier, "head") and hasattr(classifier.head, "projection"):  # GenreMERT: projection → classifier
        return classifier.head(pooled)[1]
    if hasattr(classifier, "head"):  # CRNN_FGNL: dropout → classifier on the last GRU state
        return classifier.head(pooled)
    return classifier.classifier(pooled)


@pytest.mark.parametrize("name,counterfactual", CASES)
def test_automodel_on_a_classifier_folder_gives_the_embedding_the_classifier_pools(name, counterfactual, tmp_path):
    classifier, waveform = build(name, counterfactual)
    classifier.save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"].endswith("Model") and auto_map["AutoModelForAudioClassification"].endswith(
        "ForAudioClassification"
    )
    base = AutoModel.from_pretrained(tmp_path).eval()  # the registered class: no remote code
    assert type(base).__name__ == auto_map["AutoModel"].split(".")[-1]
    with torch.no_grad():
        outputs = base(waveform, output_hidden_states=True)
        expected = classifier(waveform, output_hidden_states=True)
    torch.testing.assert_close(head_logits(classifier, outputs.pooler_output), expected.logits, rtol=0, atol=0)
    torch.testing.assert_close(outputs.attention, expected.attention, rtol=0, atol=0)
    assert len(outputs.hidden_states) == len(expected.hidden_states)
    as_tuple = base(waveform, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[1], outputs.pooler_output)


REMOTE_CODE_CHECK = """
import sys
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

assert "genremert" not in sys.modules
pooled = {}
for name in sys.argv[2:]:
    base = AutoModel.from_pretrained(f"{sys.argv[1]}/{name}", trust_remote_code=True).eval()
    assert type(base).__module__.startswith("transformers_modules"), type(base).__module__
    with torch.no_grad():
        pooled[name] = base(load_file(f"{sys.argv[1]}/{name}/waveform.safetensors")["waveform"]).pooler_output
save_file(pooled, f"{sys.argv[1]}/pooled.safetensors")
"""


def test_automodel_with_remote_code_from_the_folder_alone(tmp_path):
    """In a fresh process that never imports genremert: the folder's own code gives the classifier's embedding."""
    import subprocess
    import sys

    expected = {}
    for name in MODELS:
        classifier, waveform = build(name, "learned")
        classifier.save_pretrained(tmp_path / name)
        save_file({"waveform": waveform}, tmp_path / name / "waveform.safetensors")
        with torch.no_grad():
            expected[name] = classifier.base_model(waveform).pooler_output
    script = tmp_path / "check.py"
    script.write_text(REMOTE_CODE_CHECK)
    subprocess.run([sys.executable, str(script), str(tmp_path), *MODELS], check=True, cwd=tmp_path, timeout=600)
    pooled = load_file(tmp_path / "pooled.safetensors")
    for name in MODELS:
        torch.testing.assert_close(pooled[name], expected[name], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_classifier_loads_a_base_checkpoint_and_the_registry_knows_the_base(name, tmp_path):
    classifier, _ = build(name)
    base = classifier.base_model
    assert base is not classifier and type(base).__name__.endswith("Model")
    assert isinstance(AutoModel.from_config(classifier.config), type(base))  # registered: no remote code
    base.save_pretrained(tmp_path)
    reloaded = type(classifier).from_pretrained(tmp_path)
    state = reloaded.state_dict()
    prefix = classifier.base_model_prefix
    for key, value in base.state_dict().items():
        assert torch.equal(state[f"{prefix}.{key}"], value), key


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_folder_saved_in_the_legacy_flat_layout_still_loads(name, tmp_path):
    classifier, waveform = build(name, "learned")
    classifier.save_pretrained(tmp_path)
    prefix = f"{classifier.base_model_prefix}."
    weights = load_file(tmp_path / "model.safetensors")
    save_file({key.removeprefix(prefix): value for key, value in weights.items()}, tmp_path / "model.safetensors")
    reloaded = type(classifier).from_pretrained(tmp_path).eval()
    for key, value in classifier.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    assert torch.equal(reloaded(waveform).logits, classifier(waveform).logits)


@pytest.mark.skipif(
    importlib.util.find_spec("onnxscript") is None, reason="ONNX export needs onnxscript (the export extra)"
)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_export_matches_eager(name, tmp_path):
    from genremert.publishing.onnx_export import export_onnx

    classifier, _ = build(name, "learned")
    classifier.save_pretrained(tmp_path / "model")
    report = export_onnx(classifier, tmp_path / "model.onnx", tolerance=1e-4)
    assert (tmp_path / "model.onnx").stat().st_size > 0
    if importlib.util.find_spec("onnxruntime") is not None:
        assert report["max_abs_logit_difference"] <= 1e-4
        assert (1, int(1.5 * classifier.config.slice_seconds * classifier.config.sampling_rate)) in report[
            "batches"
        ] or (name == "crnn_fgnl")
