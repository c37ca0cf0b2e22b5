"""Reduced-precision and compiled inference of GenreMERT: bfloat16 weights give float32's answers, float32 stays the
reference computation bit for bit, and the pipeline's `compile` option runs the model through `torch.compile`."""

import numpy as np
import pytest
import torch
from tiny_configs import tiny_genremert_config
from transformers import pipeline

from genremert import GenreMERTForAudioClassification, build_feature_extractor
from pipeline_genremert import SongLevelAudioClassificationPipeline


def tiny_model() -> GenreMERTForAudioClassification:
    torch.manual_seed(0)
    model = GenreMERTForAudioClassification(tiny_genremert_config(num_labels=5)).eval()
    # Random heads give near-tied logits, where any rounding flips the top-1; a trained classifier separates its
    # classes. Scale the classifier so that the answers are decided by the audio, as after training.
    with torch.no_grad():
        model.head.classifier.weight.mul_(20.0)
    return model


def clips(batch: int, seconds: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return 0.1 * torch.randn(batch, int(24_000 * seconds), generator=generator)  # (batch, samples)


def test_bfloat16_weights_give_the_float32_answers():
    model = tiny_model()
    reduced = tiny_model().to(torch.bfloat16)
    inputs = clips(8)
    with torch.inference_mode():
        full = model(inputs).logits.softmax(-1)  # (batch, labels)
        half = reduced(inputs).logits.float().softmax(-1)
        autocast = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model(inputs).logits.float().softmax(-1)
    assert full.dtype == torch.float32 and reduced(inputs).logits.dtype == torch.bfloat16
    assert torch.equal(full.argmax(-1), half.argmax(-1))
    assert torch.equal(full.argmax(-1), autocast.argmax(-1))
    assert (full - half).abs().max() < 0.05  # bfloat16 keeps 8 bits of mantissa
    assert len(set(full.argmax(-1).tolist())) > 1  # the clips do not all fall in one class


def test_float32_is_the_reference_computation_bit_for_bit():
    """float32 runs the reference genreMERT's operations in its order: every hidden state stacked → 1×1 Conv2d → time
    attention → attention-weighted sum; reduced-precision paths must not touch it."""
    model = tiny_model()
    inputs = clips(2)
    base = model.genremert
    with torch.inference_mode():
        output = model(inputs)
        states = torch.stack(base.backbone(inputs, output_hidden_states=True).hidden_states, dim=1)
        states = base.layer_aggregation.conv(states)[:, 0]  # (batch, frames, hidden)
        attention = base.time_attention(states)  # (batch, frames)
        pooled = torch.bmm(attention.unsqueeze(1), states)[:, 0]  # (batch, hidden)
        logits = model.head(pooled)[1]
    assert torch.equal(output.attention, attention)
    assert torch.equal(output.logits, logits)


@pytest.mark.skipif(not hasattr(torch, "compile"), reason="torch.compile is unavailable")
def test_pipeline_compile_option_runs_the_compiled_model():
    model = tiny_model()
    classifier = pipeline(
        "audio-classification",
        model=model,
        feature_extractor=build_feature_extractor(model.config),
        pipeline_class=SongLevelAudioClassificationPipeline,
    )
    audio = np.asarray(clips(1, seconds=2.5)[0])
    torch._dynamo.reset()
    # the "eager" backend traces with TorchDynamo as inductor does, without its minutes of C++ compilation here
    compiled = classifier(audio, compile="eager", top_k=None)
    assert classifier._compiled[0] == "eager"
    plain = classifier(audio, top_k=None)
    assert [answer["label"] for answer in compiled] == [answer["label"] for answer in plain]
    np.testing.assert_allclose([a["score"] for a in compiled], [a["score"] for a in plain], atol=1e-6)
    with pytest.raises(ValueError, match="`compile` must be True, False or a torch.compile backend name, got 3"):
        classifier(audio, compile=3)
