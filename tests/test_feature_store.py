"""Feature stores (extract_features.py, `--feature_store`): two processes write the store one process writes; an
interrupted extraction resumes without recomputing its finished shards; heads trained on a float32 store get the
metrics of the live backbone without running it; int8 stays close to float32; a store of other features is refused."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genremert.data import feature_store
from genremert.data.feature_store import FeatureStore, dequantize_int8, quantize_int8
from genremert.training import feature_extraction
from genremert.training import run as training_run


sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_run_classification import SYNTHETIC, TINY_GENREMERT  # noqa: E402


REPO = Path(__file__).resolve().parent.parent
# 3 classes × 3 albums × 2 songs of 3 s, 1 s slices: 72 slices over train, validation, test, test_noisy.
NUM_SLICES = 72


def model_and_data_flags(data_dir, *extra):
    return [
        "--model_type", "genremert", "--config_overrides", TINY_GENREMERT, "--dataset", "synthetic",
        "--data_dir", str(data_dir), "--synthetic_options", json.dumps(SYNTHETIC), "--bias_class", "0",
        "--slice_seconds", "1.0", *extra,
    ]  # fmt: skip


def extract(data_dir, store_dir, *extra):
    """One-process extraction in this process, on one thread like each process of the two-process launch (torchrun
    sets OMP_NUM_THREADS=1): float32 matrix products are bit-identical only at one blocking, i.e. one thread count."""
    flags = ["--output_dir", str(store_dir), "--shard_size", "16", "--disable_tqdm", "true", *extra]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return feature_extraction.main(model_and_data_flags(data_dir, *flags))
    finally:
        torch.set_num_threads(threads)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shard_tensors(store_dir) -> dict:
    return {name: load_file(Path(store_dir) / name) for name in json.loads((Path(store_dir) / "index.json").read_text())["shards"]}  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="module")
def float32_store(data_dir, tmp_path_factory):
    store_dir = tmp_path_factory.mktemp("stores") / "float32"
    figures = extract(data_dir, store_dir, "--store_dtype", "float32")
    assert figures["complete"] and figures["slices"] == NUM_SLICES and figures["num_shards"] == 5
    return store_dir


def test_two_processes_write_the_store_that_one_process_writes(float32_store, data_dir, tmp_path):
    store_dir = tmp_path / "two"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "extract_features.py",
        *model_and_data_flags(data_dir, "--output_dir", str(store_dir), "--shard_size", "16", "--store_dtype", "float32"),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stdout + result.stderr
    # Disjoint shards: process 0 computes shards 0, 2, 4 and process 1 shards 1, 3.
    assert (
        "process 0 of 2: 3 shard(s) to compute [0, 2, 4]" in log
        and "process 1 of 2: 2 shard(s) to compute [1, 3]" in log
    )
    assert "slices/s" in log and "GB per hour of audio" in log
    one, two = shard_tensors(float32_store), shard_tensors(store_dir)
    assert one.keys() == two.keys()
    for name in one:
        assert torch.equal(one[name]["features"], two[name]["features"]), name
    index_one = json.loads((float32_store / "index.json").read_text())
    index_two = json.loads((store_dir / "index.json").read_text())
    assert index_one == index_two and index_two["complete"]


def test_an_interrupted_extraction_resumes_without_recomputing_finished_shards(
    float32_store, data_dir, tmp_path, monkeypatch
):
    calls = []
    compute = feature_store.backbone_layers

    def counting(model, batch, layers):
        calls.append(len(batch["input_values"]))
        return compute(model, batch, layers)

    monkeypatch.setattr(feature_store, "backbone_layers", counting)
    store_dir = tmp_path / "resumed"
    first = extract(data_dir, store_dir, "--store_dtype", "float32", "--max_shards", "2")
    assert (first["computed"], first["complete"], sum(calls)) == (2, False, 32)
    with pytest.raises(ValueError, match=r"is incomplete \(3 of 5 shards missing"):
        FeatureStore(store_dir)
    finished = {name: (store_dir / name).stat().st_mtime_ns for name in ("shard-00000.safetensors", "shard-00001.safetensors")}  # fmt: skip
    calls.clear()
    second = extract(data_dir, store_dir, "--store_dtype", "float32")
    assert (second["computed"], second["skipped"], second["complete"]) == (3, 2, True)
    assert sum(calls) == NUM_SLICES - 32  # only the three unfinished shards ran the backbone
    assert all((store_dir / name).stat().st_mtime_ns == stamp for name, stamp in finished.items())
    for name, tensors in shard_tensors(float32_store).items():
        assert torch.equal(tensors["features"], load_file(store_dir / name)["features"]), name
    # Resuming with other features into the same folder is refused, naming what differs.
    with pytest.raises(ValueError, match="made otherwise .*dtype: 'float32' vs 'int8'"):
        extract(data_dir, store_dir, "--store_dtype", "int8")


TRAIN_FLAGS = [
    "--counterfactual", "learned", "--cf_warmup_epochs", "1", "--num_train_epochs", "2",
    "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8", "--learning_rate", "1e-3",
    "--eval_strategy", "no", "--save_strategy", "no", "--vote_threshold", "none", "--report_to", "none",
    "--disable_tqdm", "true", "--do_train", "--do_predict",
]  # fmt: skip
COMPARED = (
    "test_frame_accuracy",
    "test_song_accuracy",
    "test_song_f1",
    "test_noisy_frame_f1",
    "test_loss",
    "train_loss",
)


def test_heads_trained_on_a_float32_store_get_the_metrics_of_the_live_backbone(
    float32_store, data_dir, tmp_path, monkeypatch
):
    # one thread, as the store was extracted (`extract`): the live backbone's float32 features are then bit-identical
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        compare_store_and_live_runs(float32_store, data_dir, tmp_path, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def compare_store_and_live_runs(float32_store, data_dir, tmp_path, monkeypatch):
    live = training_run.main(model_and_data_flags(data_dir, *TRAIN_FLAGS, "--output_dir", str(tmp_path / "live")))
    from transformers.models.hubert.modeling_hubert import HubertModel

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone ran in a run on a feature store")

    monkeypatch.setattr(HubertModel, "forward", no_backbone)
    stored = training_run.main(
        model_and_data_flags(
            data_dir, *TRAIN_FLAGS, "--output_dir", str(tmp_path / "stored"), "--feature_store", str(float32_store)
        )  # fmt: skip
    )
    for key in COMPARED:
        assert stored[key] == pytest.approx(live[key], abs=1e-5), key
    assert stored["feature_store"] == str(float32_store)
    # The saved folder is a complete model: the store's backbone, with the trained head.
    saved = load_file(tmp_path / "stored" / "model.safetensors")
    reference = load_file(tmp_path / "live" / "model.safetensors")
    assert saved.keys() == reference.keys() and any("backbone." in key for key in saved)
    for key in saved:
        torch.testing.assert_close(saved[key], reference[key], rtol=0, atol=1e-5, msg=key)


def test_int8_stays_within_half_a_step_of_float32_and_a_quarter_of_its_size(float32_store, data_dir, tmp_path):
    features = torch.randn(2, 3, 50, 8) * torch.linspace(0.1, 10, 8)  # (slices, layers, frames, hidden)
    quantized, scales = quantize_int8(features)
    assert quantized.dtype == torch.int8 and scales.shape == (2, 3, 8)
    assert ((dequantize_int8(quantized, scales) - features).abs() <= scales.unsqueeze(2) / 2 + 1e-6).all()

    extract(data_dir, tmp_path / "int8", "--store_dtype", "int8", "--layers", "0,2")
    exact, small = FeatureStore(float32_store), FeatureStore(tmp_path / "int8")
    assert small.layers == [0, 2] and small.index["dtype"] == "int8"
    split, members = exact.index["splits"][0]
    for song_id, start in members[:6]:
        reference = exact.features(split, song_id, start, layers=[0, 2])  # (layers, frames, hidden)
        steps = reference.abs().amax(dim=1, keepdim=True) / 127
        assert ((small.features(split, song_id, start) - reference).abs() <= steps / 2 + 1e-6).all()
    bytes_exact = sum(path.stat().st_size for path in float32_store.glob("shard-*"))
    bytes_small = sum(path.stat().st_size for path in (tmp_path / "int8").glob("shard-*"))
    assert bytes_small < bytes_exact * (2 / 3) / 4 * 1.1  # 2 of 3 layers, 1 byte instead of 4, plus the scales


def test_a_store_of_other_slicing_layers_or_backbone_weights_is_refused(float32_store, data_dir, tmp_path):
    def run(store, *extra):
        flags = model_and_data_flags(data_dir, *TRAIN_FLAGS, "--output_dir", str(tmp_path / "run"), *extra)
        return training_run.main([*flags, "--feature_store", str(store)])

    with pytest.raises(ValueError, match=r"slice_overlap_seconds: store 0.0, this run 0.5"):
        run(float32_store, "--slice_overlap_seconds", "0.5")
    with pytest.raises(ValueError, match=r"layers: .* keeps \[0, 2\] \(missing \[1\]\)"):
        partial = tmp_path / "layers"
        extract(data_dir, partial, "--store_dtype", "float16", "--layers", "0,2")
        run(partial, "--config_overrides", TINY_GENREMERT + ",aggregation_layers=[0,1,2]")
    other = tmp_path / "other"
    shutil.copytree(float32_store, other)
    index = json.loads((other / "index.json").read_text())
    index["backbone_sha256"] = "0" * 64
    (other / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="backbone weights: the store's SHA-256 000000000000… differs"):
        run(other)
    with pytest.raises(ValueError, match="--model_type crnn_fgnl reads audio"):
        training_run.main(["--model_type", "crnn_fgnl", "--output_dir", str(tmp_path / "x"), "--feature_store", str(other)])  # fmt: skip


def test_a_head_trained_on_a_store_of_a_saved_model_is_saved_with_that_models_backbone(data_dir, tmp_path):
    """A store made from a model folder; a new head trained on it (no --model_name_or_path): the saved folder carries
    the folder's backbone, read after training and checked against the store's SHA-256."""
    import genremert
    from genremert.training import arguments, preparation

    flags = model_and_data_flags(data_dir, "--output_dir", str(tmp_path / "unused"))
    model_args, _, _ = arguments.parse_arguments(flags)
    names = (
        genremert.load_synthetic(**SYNTHETIC, bias_class=0, cache_dir=str(data_dir))["train"].features["label"].names
    )
    torch.manual_seed(7)  # another backbone than the one --seed builds
    source = genremert.GenreMERTForAudioClassification(preparation.build_config(model_args, names, 1.0))
    source.save_pretrained(tmp_path / "source")
    data_flags = model_and_data_flags(data_dir)[4:]  # the dataset flags, without --model_type / --config_overrides
    feature_extraction.main(
        ["--model_type", "genremert", "--model_name_or_path", str(tmp_path / "source"), *data_flags,
         "--output_dir", str(tmp_path / "store"), "--shard_size", "32", "--disable_tqdm", "true"]
    )  # fmt: skip
    index = json.loads((tmp_path / "store" / "index.json").read_text())
    assert index["backbone_source"] == {"kind": "model", "name": str(tmp_path / "source")}
    training_run.main(
        model_and_data_flags(data_dir, "--feature_store", str(tmp_path / "store"), "--output_dir", str(tmp_path / "run"),
                             "--max_steps", "2", "--per_device_train_batch_size", "4", "--report_to", "none",
                             "--save_strategy", "no", "--disable_tqdm", "true", "--do_train")
    )  # fmt: skip
    saved, original = (
        load_file(tmp_path / "run" / "model.safetensors"),
        load_file(tmp_path / "source" / "model.safetensors"),
    )
    backbone_keys = [key for key in original if "backbone." in key]
    assert backbone_keys
    for key in backbone_keys:
        assert torch.equal(saved[key], original[key]), key
