"""Speed features: the extract-once backbone feature cache, reduced-precision inference, and the pipeline's bounded
batches of slices for long recordings."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genremert import BackboneFeatureCache


sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_run_classification import tiny_flags  # noqa: E402
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config  # noqa: E402

from genremert.training import run


def genremert_run(data_dir, output_dir, *extra):
    flags = tiny_flags(data_dir, output_dir, "--report_to", "none", *extra, model_type="genremert")
    return run.main(flags)


def test_float32_backbone_cache_gives_the_metrics_of_training_without_it(tmp_path):
    data_dir, cache = tmp_path / "synthetic", tmp_path / "features"
    plain = genremert_run(data_dir, tmp_path / "plain")
    cached = genremert_run(data_dir, tmp_path / "cached", "--backbone_cache_dir", str(cache),
                           "--backbone_cache_dtype", "float32")  # fmt: skip
    for key in ("test_frame_accuracy", "test_frame_f1", "test_song_accuracy", "test_song_f1", "eval_song_f1"):
        assert cached[key] == plain[key], key
    entries = list(cache.rglob("*.npy"))
    manifest = json.loads((cache / "manifest.json").read_text())
    assert entries and manifest["dtype"] == "float32" and len(manifest["aggregation_layers"]) == 3
    # A later run (other output folder, same backbone) reads the entries instead of running the backbone.
    stamps = {path: path.stat().st_mtime_ns for path in entries}
    again = genremert_run(data_dir, tmp_path / "again", "--backbone_cache_dir", str(cache),
                          "--backbone_cache_dtype", "float32")  # fmt: skip
    assert again["test_song_f1"] == plain["test_song_f1"]
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())


def test_a_cache_of_other_backbone_weights_is_refused_and_half_written_entries_are_never_read(tmp_path):
    from genremert import GenreMERTForAudioClassification

    torch.manual_seed(0)
    model = GenreMERTForAudioClassification(tiny_genremert_config()).eval()
    cache = BackboneFeatureCache(tmp_path / "features", model, "float32")
    waveforms = 0.1 * torch.randn(2, 12000)
    first = cache.hidden_states(model, waveforms, ["a" * 40, "b" * 40])
    torch.testing.assert_close(first, model.backbone_hidden_states(waveforms), rtol=0, atol=1e-5)
    # A torn entry (what a crash mid-write would leave under the final name) is recomputed, never read.
    cache._path("a" * 40).write_bytes(b"\x93NUMPY torn")
    torch.testing.assert_close(cache.hidden_states(model, waveforms, ["a" * 40, "b" * 40]), first, rtol=0, atol=1e-5)
    assert cache.misses == 3 and cache.hits == 1
    torch.manual_seed(1)
    other = GenreMERTForAudioClassification(tiny_genremert_config()).eval()
    with pytest.raises(ValueError, match="made with another backbone_sha256"):
        BackboneFeatureCache(tmp_path / "features", other, "float32")
    with pytest.raises(ValueError, match="made with another dtype"):
        BackboneFeatureCache(tmp_path / "features", model, "float16")
    unfrozen = GenreMERTForAudioClassification(tiny_genremert_config(freeze_backbone=False))
    with pytest.raises(ValueError, match="frozen backbone"):
        BackboneFeatureCache(tmp_path / "other", unfrozen)


@pytest.mark.parametrize("kind", ["genremert", "crnn_fgnl"])
def test_bfloat16_load_and_pipeline_agree_with_float32(tmp_path, kind):
    from transformers import AutoModelForAudioClassification, pipeline

    from genremert import CRNNFGNLForAudioClassification, GenreMERTForAudioClassification

    torch.manual_seed(0)
    config = tiny_genremert_config() if kind == "genremert" else tiny_crnn_fgnl_config()
    model_class = GenreMERTForAudioClassification if kind == "genremert" else CRNNFGNLForAudioClassification
    model_class(config).eval().save_pretrained(tmp_path / "model")
    float32 = AutoModelForAudioClassification.from_pretrained(tmp_path / "model", trust_remote_code=True)
    bfloat16 = AutoModelForAudioClassification.from_pretrained(
        tmp_path / "model", trust_remote_code=True, dtype=torch.bfloat16
    )
    assert next(bfloat16.parameters()).dtype == torch.bfloat16
    inputs = 0.1 * torch.randn(8, config.sampling_rate, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, reduced = float32(inputs).logits, bfloat16(inputs).logits.float()
    assert torch.isfinite(reduced).all()
    assert (full.argmax(-1) == reduced.argmax(-1)).float().mean() >= 0.75
    assert (full.softmax(-1) - reduced.softmax(-1)).abs().max() < 0.05
    classifier = pipeline("audio-classification", model=str(tmp_path / "model"), trust_remote_code=True,
                          dtype=torch.bfloat16)  # fmt: skip
    reference = pipeline("audio-classification", model=str(tmp_path / "model"), trust_remote_code=True)
    song = 0.1 * np.random.default_rng(2).standard_normal(3 * config.sampling_rate).astype(np.float32)
    answer, expected = classifier(song, top_k=None, aggregation="mean"), reference(song, top_k=None, aggregation="mean")
    assert all(np.isfinite(entry["score"]) for entry in answer)
    assert answer[0]["label"] == expected[0]["label"]
    # CPU autocast in the pipeline (the model stays float32).
    autocast = reference(song, top_k=None, aggregation="mean", autocast_dtype="bfloat16")
    assert autocast[0]["label"] == expected[0]["label"]


def test_long_recordings_go_through_the_model_in_bounded_batches(tmp_path):
    from transformers import pipeline

    from genremert import CRNNFGNLForAudioClassification

    model = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config()).eval()
    model.save_pretrained(tmp_path / "model")
    classifier = pipeline("audio-classification", model=str(tmp_path / "model"), trust_remote_code=True)
    batches = []
    classifier.model.register_forward_hook(
        lambda module, args, kwargs_or_output: batches.append(args[0].shape[0]) if args else None
    )
    hooked = []
    classifier.model.register_forward_pre_hook(
        lambda module, args, kwargs: hooked.append(kwargs["input_values"].shape), with_kwargs=True
    )
    for seconds in (10, 120):  # a 2-minute recording: 120 one-second slices
        hooked.clear()
        classifier(np.zeros(seconds * 16000, dtype=np.float32) + 0.01, slice_batch_size=4)
        assert max(shape[0] for shape in hooked) == 4 and sum(shape[0] for shape in hooked) == seconds
        assert all(shape[1] == 16000 for shape in hooked)  # slices, never the whole recording


def test_evaluation_under_bfloat16_autocast(tmp_path):
    """`--eval_autocast bfloat16`: evaluation and prediction run under autocast and agree with float32."""
    flags = tiny_flags(tmp_path / "synthetic", tmp_path / "fp32", "--report_to", "none")
    full = run.main(flags)
    flags = tiny_flags(tmp_path / "synthetic", tmp_path / "bf16", "--report_to", "none", "--eval_autocast", "bfloat16")
    reduced = run.main(flags)
    for key in ("test_frame_accuracy", "test_song_accuracy", "eval_frame_f1"):
        assert np.isfinite(reduced[key]) and abs(reduced[key] - full[key]) <= 0.2, key
    with pytest.raises(ValueError, match="eval_autocast"):
        run.main(tiny_flags(tmp_path / "synthetic", tmp_path / "x", "--eval_autocast", "int8"))
