"""Any Transformers audio encoder as GenreMERT's backbone: a tiny config of HuBERT, wav2vec2, WavLM and the Audio
Spectrogram Transformer builds, trains one LCA step, saves, and loads in a fresh process with trust_remote_code giving
identical logits."""

import json
import os
import subprocess
import sys

import pytest
import torch
from tiny_configs import tiny_genremert_config

from genremert import (
    REFERENCE_LCA_WEIGHTS,
    GenreMERTForAudioClassification,
    build_feature_extractor,
    combine_lca_loss,
    lca_loss_terms,
)


WAVEFORM_TINY = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
    "conv_dim": [16, 16, 16], "conv_stride": [5, 4, 4], "conv_kernel": [10, 4, 4], "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}  # fmt: skip
BACKBONES = {
    "hubert": {"model_type": "hubert", **WAVEFORM_TINY},
    "wav2vec2": {"model_type": "wav2vec2", **WAVEFORM_TINY},
    "wavlm": {"model_type": "wavlm", **WAVEFORM_TINY, "num_buckets": 16, "max_bucket_distance": 64},
    "audio-spectrogram-transformer": {
        "model_type": "audio-spectrogram-transformer", "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 37, "num_mel_bins": 32, "max_length": 64,
        "patch_size": 16, "frequency_stride": 16, "time_stride": 16,
    },
}  # fmt: skip


def build(kind: str):
    torch.manual_seed(0)
    config = tiny_genremert_config(
        backbone_config=BACKBONES[kind], sampling_rate=16000, counterfactual="learned", aggregation_layers=[0, 1, 2]
    )
    return GenreMERTForAudioClassification(config)


def inputs_for(model):
    waveforms = 0.1 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(1))
    features = build_feature_extractor(model.config)(list(waveforms.numpy()), sampling_rate=16000, return_tensors="pt")
    return {key: value for key, value in features.items() if key != "attention_mask"}


@pytest.mark.parametrize("kind", sorted(BACKBONES))
def test_any_audio_encoder_trains_an_lca_step_saves_and_loads_in_a_fresh_process(kind, tmp_path):
    model = build(kind)
    inputs = inputs_for(model)
    labels = torch.tensor([0, 2])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    output = model(**inputs)
    terms = lca_loss_terms(
        output.logits, labels, output.counterfactual_logits, output.attention, output.counterfactual_attention
    )
    loss = combine_lca_loss(terms, REFERENCE_LCA_WEIGHTS)
    loss.backward()
    branch = list(model.counterfactual_parameters())
    assert all(p.grad is not None for p in branch) and torch.isfinite(loss)
    optimizer.step()
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(tmp_path / "model")
    torch.save(inputs, tmp_path / "inputs.pt")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["backbone_config"]["model_type"] == kind
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForAudioClassification\n"
        "model = AutoModelForAudioClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()\n"
        "inputs = torch.load(sys.argv[2], weights_only=True)\n"
        "with torch.no_grad():\n"
        "    torch.save(model(**inputs).logits, sys.argv[3])\n"
        "print(type(model).__module__)\n"
    )
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", PYTHONPATH="")
    completed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "model"), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().startswith("transformers_modules")
    assert torch.equal(torch.load(tmp_path / "out.pt", weights_only=True), expected)


def test_unknown_backbone_types_are_refused():
    with pytest.raises(ValueError, match="must be an audio encoder"):
        tiny_genremert_config(backbone_config={"model_type": "bert"})
