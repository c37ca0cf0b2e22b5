#!/usr/bin/env python
"""Feature stores: what a head epoch costs from a store against recomputing the backbone, and what float16 and int8
stores cost in accuracy and give in disk (docs/scaling.md).

`epoch`: one epoch of head training (forward → loss → backward → Adam step) over `--slices` slices of
`--slice_seconds`, (A) running the frozen backbone on the waveforms, (B) reading its hidden states from a float16
store (the store's read time included). A B A B ... for `--rounds` rounds; printed are the median of each and the
median of the per-round ratios A / B with their spread, and `os.getloadavg()` before and after. The backbone is
reduced on CPU (hidden 256, 4 layers, MERT's conv stack: 75 frames/s; random weights, the speed is the same).

`dtype`: the tiny synthetic run of the tests trained with run_classification.py on a float32, a float16 and an int8
store (same seed): the test metrics of each, the largest difference of a test slice's class probability from the
float32 head's, and each store's bytes on disk per hour of audio.

    python benchmarks/benchmark_feature_store.py epoch --rounds 5
    python benchmarks/benchmark_feature_store.py dtype
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import torch  # noqa: E402

from configuration_genremert import MERT_V1_95M_BACKBONE, GenreMERTConfig  # noqa: E402
from genremert import GenreMERTForAudioClassification  # noqa: E402
from genremert.data.feature_store import FeatureStore, backbone_layers, encode, shard_name  # noqa: E402


def reduced_model(slice_seconds: float) -> GenreMERTForAudioClassification:
    backbone = dict(MERT_V1_95M_BACKBONE, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                    intermediate_size=1024)  # fmt: skip
    torch.manual_seed(0)
    return GenreMERTForAudioClassification(GenreMERTConfig(backbone_config=backbone, num_labels=10, slice_seconds=slice_seconds))  # fmt: skip


def head_epoch(model, batches, read) -> float:
    """Seconds of one epoch of head training; `read(batch)` gives the model's inputs of a batch."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    started = time.perf_counter()
    for batch, labels in batches:
        loss = model(**read(batch), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - started


def epoch_benchmark(args) -> None:
    model = reduced_model(args.slice_seconds)
    samples = int(args.slice_seconds * model.config.sampling_rate)
    generator = torch.Generator().manual_seed(0)
    waveforms = torch.randn(args.slices, samples, generator=generator) * 0.1
    labels = torch.randint(0, 10, (args.slices,), generator=generator)
    layers = list(model.config.aggregation_layers)
    with tempfile.TemporaryDirectory() as folder:
        # A float16 store of these slices, one shard, written as extract_store writes its shards.
        from safetensors.torch import save_file

        features = torch.cat([backbone_layers(model.eval(), {"input_values": waveforms[i : i + 4]}, layers)
                              for i in range(0, args.slices, 4)])  # fmt: skip
        save_file(encode(features, "float16"), os.path.join(folder, shard_name(0)))
        index = {"format": "genremert-feature-store", "version": 1, "complete": True, "shard_size": args.slices,
                 "shards": [shard_name(0)], "dtype": "float16", "layers": layers,
                 "splits": [["train", [[str(i), 0] for i in range(args.slices)]]]}  # fmt: skip
        Path(folder, "index.json").write_text(json.dumps(index))
        store = FeatureStore(folder)
        batches = [(range(i, min(i + args.batch_size, args.slices)), labels[i : i + args.batch_size])
                   for i in range(0, args.slices, args.batch_size)]  # fmt: skip

        def live(rows):
            return {"input_values": waveforms[list(rows)]}

        def stored(rows):
            return {"backbone_hidden_states": torch.stack([store.features("train", str(i), 0) for i in rows])}

        print(f"load before: {os.getloadavg()}")
        times = {"backbone": [], "store": []}
        for _ in range(args.rounds):
            times["backbone"].append(head_epoch(model, batches, live))
            times["store"].append(head_epoch(model, batches, stored))
        print(f"load after: {os.getloadavg()}")
    ratios = [a / b for a, b in zip(times["backbone"], times["store"])]
    print(
        f"head epoch of {args.slices} slices of {args.slice_seconds} s (reduced backbone, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads): backbone {statistics.median(times['backbone']):.3f} s, store "
        f"{statistics.median(times['store']):.4f} s; backbone / store = {statistics.median(ratios):.1f}× "
        f"(rounds {min(ratios):.1f}-{max(ratios):.1f}×, {args.rounds} rounds)"
    )


def dtype_benchmark(args) -> None:
    from test_feature_store import extract, model_and_data_flags

    from genremert.training import run as training_run

    train = ["--counterfactual", "learned", "--cf_warmup_epochs", "1", "--num_train_epochs", "4",
             "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", "--eval_strategy", "no",
             "--save_strategy", "no", "--vote_threshold", "none", "--report_to", "none", "--disable_tqdm", "true",
             "--do_train", "--do_predict"]  # fmt: skip
    dtypes = ("float32", "float16", "int8")
    with tempfile.TemporaryDirectory() as folder:
        data_dir, results = Path(folder, "synthetic"), {}
        for dtype in dtypes:
            extract(data_dir, Path(folder, dtype), "--store_dtype", dtype)
            flags = model_and_data_flags(data_dir, *train, "--output_dir", str(Path(folder, f"run_{dtype}")),
                                         "--feature_store", str(Path(folder, dtype)))  # fmt: skip
            results[dtype] = training_run.main(flags)
        stores = {dtype: FeatureStore(Path(folder, dtype)) for dtype in dtypes}
        heads = {dtype: GenreMERTForAudioClassification.from_pretrained(Path(folder, f"run_{dtype}")).eval()
                 for dtype in dtypes}  # fmt: skip
        members = dict(stores["float32"].index["splits"])["test"]
        features = {
            dtype: torch.stack([store.features("test", song_id, start) for song_id, start in members])
            for dtype, store in stores.items()
        }  # fmt: skip  (test slices, layers, frames, hidden)
        with torch.no_grad():
            reference = heads["float32"](backbone_hidden_states=features["float32"]).logits.softmax(-1)
            for dtype in dtypes:
                own = heads[dtype](backbone_hidden_states=features[dtype]).logits.softmax(-1)
                same_head = heads["float32"](backbone_hidden_states=features[dtype]).logits.softmax(-1)
                index = stores[dtype].index
                shards = sum(Path(folder, dtype, name).stat().st_size for name in index["shards"])
                hours = index["num_slices"] * index["slicing"]["slice_seconds"] / 3600
                print(
                    f"{dtype}: test frame acc {results[dtype]['test_frame_accuracy']:.4f}, song acc "
                    f"{results[dtype]['test_song_accuracy']:.4f}, loss {results[dtype]['test_loss']:.5f}; max |p - "
                    f"p_float32|: its own head {float((own - reference).abs().max()):.2e}, the float32 head on its "
                    f"features {float((same_head - reference).abs().max()):.2e}; {shards / hours / 1e9:.3f} GB per "
                    "hour on disk (tiny backbone: 3 layers × 299 frames × hidden 32 per 1 s slice)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["epoch", "dtype"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--slice_seconds", type=float, default=5.0)
    parser.add_argument("--batch_size", type=int, default=4)
    args = parser.parse_args()
    epoch_benchmark(args) if args.part == "epoch" else dtype_benchmark(args)


if __name__ == "__main__":
    main()
