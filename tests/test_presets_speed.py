"""The GenreMERT presets run their frozen backbone once: the feature cache and the backbone's precision are on `auto`
in the presets (and so in `run_experiments.py` sweeps over them), `auto` decides from the hardware and the disk, the
choice is logged with its reason, and `--backbone_cache off` / `--backbone_dtype float32` switch them off.

The speed itself (epochs after the first against today's float32 backbone without cache, interleaved rounds) is
measured by `benchmarks/benchmark_preset_epochs.py`; here the proxy that cannot be flaky is counted: in a preset-like
run every slice goes through the backbone exactly once, and every later epoch and evaluation reads the cache."""

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tiny_configs import tiny_genremert_config

import genremert
from genremert.data import backbone_cache
from genremert.training import frozen_backbone, sweep_arguments
from genremert.training import run as training_run


REPO = Path(__file__).resolve().parent.parent
PRESETS = sorted((REPO / "configs").glob("*.json"))
GENREMERT_PRESETS = [path for path in PRESETS if path.stem.startswith("genremert")]
# 3 singers × 3 albums × 2 songs of 3 s, album split: 6 songs (18 one-second slices) in each of the four splits.
SYNTHETIC = {"num_classes": 3, "albums_per_class": 3, "songs_per_album": 2, "song_seconds": 3.0}
TINY_GENREMERT = (
    "attention_hidden_size=4,representation_size=8,backbone_config.hidden_size=32,"
    "backbone_config.num_hidden_layers=2,backbone_config.num_attention_heads=2,"
    "backbone_config.intermediate_size=37,backbone_config.conv_dim=[16,16,16],"
    "backbone_config.conv_stride=[5,4,4],backbone_config.conv_kernel=[10,4,4],"
    "backbone_config.num_conv_pos_embeddings=16,backbone_config.num_conv_pos_embedding_groups=2"
)


def training_args(**overrides):
    """The attributes of LCATrainingArguments that `configure_frozen_backbone` reads."""
    values = dict(device=torch.device("cpu"), should_log=True, backbone_cache_dir=None, backbone_cache_dtype="float16")
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.mark.parametrize("preset", PRESETS, ids=[path.stem for path in PRESETS])
def test_genremert_presets_and_their_sweeps_run_the_backbone_once_by_default(preset, tmp_path):
    argv = sweep_arguments.run_argv([str(preset), "--data_dir", str(tmp_path)], {}, 0, str(tmp_path / "out"))
    model_args, _, _ = genremert.parse_arguments(argv)  # what run_experiments.py gives every run of a sweep
    expected = ("auto", "auto") if preset in GENREMERT_PRESETS else ("off", "float32")
    assert (model_args.backbone_cache, model_args.backbone_dtype) == expected
    off, _, _ = genremert.parse_arguments([*argv, "--backbone_cache", "off", "--backbone_dtype", "float32"])
    assert (off.backbone_cache, off.backbone_dtype) == ("off", "float32")  # flags after the preset switch them off


def test_a_preset_like_run_computes_each_slice_once_and_logs_why(tmp_path, monkeypatch, caplog):
    """configs/genremert_lca.json with a tiny backbone (random weights: no download) on tiny synthetic songs."""
    monkeypatch.setenv("GENREMERT_CACHE", str(tmp_path / "cache"))
    calls = []  # (slices in the batch, slices computed by the backbone)
    original = backbone_cache.BackboneFeatureCache.hidden_states

    def counted(self, model, input_values, keys):
        before = self.misses
        result = original(self, model, input_values, keys)
        calls.append((len(keys), self.misses - before))
        return result

    monkeypatch.setattr(backbone_cache.BackboneFeatureCache, "hidden_states", counted)
    preset = json.loads((REPO / "configs" / "genremert_lca.json").read_text(encoding="utf-8"))
    del preset["backbone_name_or_path"]  # MERT's weights would be downloaded
    preset.update(
        dataset="synthetic",
        split="album",
        slice_seconds=1.0,
        slice_overlap_seconds=0.0,
        num_train_epochs=2,
        cf_warmup_epochs=1,
        per_device_train_batch_size=6,
        per_device_eval_batch_size=6,
        save_strategy="no",
        load_best_model_at_end=False,
        report_to=["none"],
        dataloader_num_workers=0,
        disable_tqdm=True,
        config_overrides=TINY_GENREMERT,
        output_dir=str(tmp_path / "out"),
    )
    (tmp_path / "preset.json").write_text(json.dumps(preset))
    flags = ["--data_dir", str(tmp_path / "songs"), "--synthetic_options", json.dumps(SYNTHETIC)]
    with caplog.at_level(logging.WARNING, logger="genremert.training.frozen_backbone"):
        results = training_run.main([str(tmp_path / "preset.json"), *flags])

    cache_dir = Path(results["backbone_cache_dir"])
    assert cache_dir.parent == tmp_path / "cache" / "backbone" and (cache_dir / "manifest.json").is_file()
    dtype, reason = frozen_backbone.choose_backbone_dtype("auto", torch.device("cpu"))
    assert results["backbone_dtype"] == dtype
    logged = [record.getMessage() for record in caplog.records if record.name.endswith("frozen_backbone")]
    assert len(logged) == 1 and logged[0].endswith(" GiB free)"), logged
    assert logged[0].startswith(
        f"backbone in {dtype} ({reason}); feature cache on at {cache_dir} (--backbone_cache auto: frozen backbone, "
        "72 slices × "
    ), logged
    # Passes: train 1, eval 1, train 2, eval 2, final eval, test, test_noisy; 18 slices each, 3 batches of 6.
    assert len(calls) == 7 * 3 and all(size == 6 for size, _ in calls)
    computed = [sum(new for _, new in calls[i : i + 3]) for i in range(0, len(calls), 3)]
    assert computed == [18, 18, 0, 0, 0, 18, 18]  # each slice once; epoch 2 and the later evaluations read the cache
    assert len(list(cache_dir.glob("*/*.npy"))) == 72
    saved = json.loads((tmp_path / "out" / "run_results.json").read_text())
    assert saved["backbone_cache_dir"] == str(cache_dir) and saved["backbone_dtype"] == dtype


def test_the_off_switches_and_a_contradiction(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GENREMERT_CACHE", str(tmp_path / "cache"))
    model = genremert.GenreMERTForAudioClassification(tiny_genremert_config())
    slices = {"train": list(range(8)), "validation": list(range(4))}
    forward = model.backbone.forward
    off = SimpleNamespace(backbone_cache="off", backbone_dtype="float32")
    args = training_args()
    with caplog.at_level(logging.WARNING, logger="genremert.training.frozen_backbone"):
        choices = frozen_backbone.configure_frozen_backbone(model, off, args, slices)
    assert choices == {"backbone_dtype": "float32", "backbone_cache_dir": None} and args.backbone_cache_dir is None
    assert model.backbone.forward == forward  # float32: the backbone is left as it is
    assert caplog.records[-1].getMessage() == (
        "backbone in float32 (--backbone_dtype float32); feature cache off (--backbone_cache off: the backbone runs "
        "every epoch)"
    )
    assert not (tmp_path / "cache").exists()
    # --backbone_cache_dir keeps its meaning whatever the mode (off is the default): the cache on in that folder.
    mine = training_args(backbone_cache_dir=str(tmp_path / "x"))
    assert frozen_backbone.configure_frozen_backbone(model, off, mine, slices)["backbone_cache_dir"] == str(
        tmp_path / "x"
    )
    args = training_args(backbone_cache_dir=str(tmp_path / "mine"))
    auto = SimpleNamespace(backbone_cache="auto", backbone_dtype="float32")
    assert (
        frozen_backbone.configure_frozen_backbone(model, auto, args, slices)["backbone_cache_dir"]
        == args.backbone_cache_dir
    )
    # A model without a backbone: nothing to choose, nothing logged.
    crnn = genremert.CRNNFGNLForAudioClassification(genremert.CRNNFGNLConfig(num_labels=2))
    assert frozen_backbone.configure_frozen_backbone(crnn, auto, training_args(), slices) == {}
    with pytest.raises(ValueError, match="--backbone_dtype bfloat16 applies to --model_type genremert"):
        genremert.ModelArguments(model_type="crnn_fgnl", backbone_dtype="bfloat16")


def test_auto_dtype_follows_the_hardware(monkeypatch):
    if Path("/proc/cpuinfo").is_file():  # the real file, where there is one
        assert frozen_backbone.cpu_flags()
    assert frozen_backbone.cpu_flags(str(Path(__file__))) == set()  # a file without a flags line
    cpu = torch.device("cpu")
    monkeypatch.setattr(frozen_backbone, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert frozen_backbone.choose_backbone_dtype("auto", cpu) == (
        "bfloat16",
        f"--backbone_dtype auto: the CPU has avx512_bf16 (torch CPU capability {torch.backends.cpu.get_cpu_capability()})",
    )
    monkeypatch.setattr(frozen_backbone, "cpu_flags", lambda: {"avx2", "amx_bf16", "avx512_bf16"})
    assert frozen_backbone.choose_backbone_dtype("auto", cpu)[0] == "bfloat16"
    monkeypatch.setattr(frozen_backbone, "cpu_flags", lambda: {"avx2", "avx512f"})
    dtype, reason = frozen_backbone.choose_backbone_dtype("auto", cpu)
    assert dtype == "float32" and "neither avx512_bf16 nor amx_bf16" in reason and "emulated" in reason
    dtype, reason = frozen_backbone.choose_backbone_dtype("bfloat16", cpu)  # asked for: done, with the caveat
    assert dtype == "bfloat16" and reason.startswith("--backbone_dtype bfloat16, although the CPU has neither")
    assert frozen_backbone.choose_backbone_dtype("float32", cpu) == ("float32", "--backbone_dtype float32")

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, native=native: native)
        dtype, reason = frozen_backbone.choose_backbone_dtype("auto", torch.device("cuda", 0))
        assert dtype == expected and "CUDA device NVIDIA H200" in reason
    assert frozen_backbone.choose_backbone_dtype("auto", torch.device("mps"))[0] == "float32"


def test_a_bfloat16_backbone_keeps_float32_weights_and_outputs():
    torch.manual_seed(0)
    model = genremert.GenreMERTForAudioClassification(tiny_genremert_config(counterfactual="learned"))
    model.train()
    waveform = 0.1 * torch.randn(2, 24000)  # (batch, samples): two 1 s slices at 24 kHz
    reference = model.backbone_hidden_states(waveform)
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    frozen_backbone.run_backbone_in_bfloat16(model)
    wrapped = model.backbone.forward
    frozen_backbone.run_backbone_in_bfloat16(model)  # twice: no second wrapper
    assert model.backbone.forward is wrapped and wrapped.__wrapped__.__self__ is model.backbone
    states = model.backbone_hidden_states(waveform)
    assert states.dtype == torch.float32 and model.dtype == torch.float32
    assert (states - reference).abs().max() <= 0.05 * reference.abs().max()  # bfloat16 rounding, not another result
    assert not torch.equal(states, reference)  # it did run in bfloat16
    assert all(torch.equal(weights[name], tensor) for name, tensor in model.state_dict().items())
    output = model(input_values=waveform, labels=torch.tensor([0, 1]))
    output.logits.sum().backward()  # the head trains in float32 on the backbone's float32 states
    gradient = model.output_classifier().weight.grad
    assert gradient is not None and gradient.dtype == torch.float32 and torch.isfinite(gradient).all()


def test_auto_cache_stays_off_when_it_cannot_help(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREMERT_CACHE", str(tmp_path / "cache"))
    model = genremert.GenreMERTForAudioClassification(tiny_genremert_config())
    choose = frozen_backbone.choose_backbone_cache
    folder, reason = choose("auto", None, "float16", model, 10, "float32")
    assert Path(folder).parent == tmp_path / "cache" / "backbone" and "10 slices × " in reason
    # The key separates what gives other features: precision, layers, weights.
    assert choose("auto", None, "float16", model, 10, "bfloat16")[0] != folder
    assert choose("auto", None, "float32", model, 10, "float32")[0] != folder
    assert choose("auto", None, "float16", model, 10, "float32")[0] == folder  # and nothing else
    monkeypatch.setattr(frozen_backbone, "free_bytes", lambda folder: 1000)
    folder, reason = choose("auto", None, "float16", model, 10, "float32")
    assert folder is None and "GiB free; pass --backbone_cache_dir on a larger disk" in reason
    assert choose("auto", None, "float16", model, None, "float32") == (
        None,
        "--backbone_cache auto: the number of slices is not known up front (streamed data), so the cache's size "
        "cannot be checked",
    )
    trained = genremert.GenreMERTForAudioClassification(tiny_genremert_config(freeze_backbone=False))
    folder, reason = choose("auto", None, "float16", trained, 10, "float32")
    assert folder is None and "the backbone is trained (freeze_backbone=False)" in reason
