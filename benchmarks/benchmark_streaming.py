"""Peak memory (RSS) of a streamed training run on a small and a large corpus: is it flat in the number of songs?

Writes two corpora of short generated songs (2,000 and 10,000 by default; 1 s at 16 kHz, FLAC bytes embedded in
parquet shards as the Hub stores audio: a struct {"bytes", "path"}, with a string `genre` column; 30 validation and 30
test songs each), then trains a tiny CRNN_FGNL on each with `run_classification.py --streaming` in a fresh Python
process (`--max_steps` × `--batch-size` slices: by default at least one whole pass over the large corpus) and reads
that process's peak resident set size (`resource.getrusage(...).ru_maxrss`). The runs are interleaved (small, large,
small, large, ...: `--rounds`), and the median of the per-round ratios large / small is printed with the load average.
Target: <= 1.1 (the training split is read shard by shard and sliced on the fly; nothing is listed or decoded whole).
Exits with status 1 when the target is missed.

    python benchmarks/benchmark_streaming.py [--songs 2000 10000] [--steps 320] [--batch-size 32] [--rounds 2]
"""

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


REPO = Path(__file__).resolve().parent.parent
RATE = 16000
GENRES = ("high", "low", "mid")
FREQUENCIES = {"low": 220.0, "mid": 660.0, "high": 1760.0}
TINY_CRNN = (
    "n_fft=512,hop_length=256,num_mel_bins=32,conv_channels=[4,8,8,8],fgnl_reduction=2,mose_hidden_size=4,"
    "gru_hidden_size=8"
)
TARGET_RATIO = 1.1


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (`ru_maxrss` is in KiB on Linux, in bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def song_bytes(index: int, seconds: float) -> tuple[str, bytes]:
    """`(genre, FLAC bytes)` of song `index`: its genre's tone, detuned per song, with a little noise."""
    import soundfile

    genre = GENRES[index % len(GENRES)]
    rng = np.random.default_rng(index)
    t = np.arange(int(seconds * RATE)) / RATE
    frequency = FREQUENCIES[genre] * (1 + 0.05 * rng.uniform(-1, 1))
    waveform = 0.3 * np.sin(2 * np.pi * frequency * t) + 0.003 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform.astype(np.float32), RATE, format="FLAC", subtype="PCM_16")
    return genre, buffer.getvalue()


def write_corpus(folder: Path, songs: int, shards: int, seconds: float) -> int:
    """`train-0000k.parquet` shards of `songs` songs plus 30 validation and 30 test songs; returns the bytes written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    splits = {"train": (songs, shards), "validation": (30, 1), "test": (30, 1)}
    offset = 0
    for split, (count, split_shards) in splits.items():
        per_shard = -(-count // split_shards)
        for shard in range(split_shards):
            rows = []
            for index in range(offset + shard * per_shard, offset + min(count, (shard + 1) * per_shard)):
                genre, data = song_bytes(index, seconds)
                rows.append({"audio": {"bytes": data, "path": f"song{index:06d}.flac"}, "genre": genre})
            pq.write_table(pa.Table.from_pylist(rows), folder / f"{split}-{shard:05d}.parquet", row_group_size=64)
        offset += count
    return sum(path.stat().st_size for path in folder.iterdir())


def child(corpus: str, output_dir: str, steps: int, batch_size: int, threads: int) -> None:
    """Runs in a fresh process: one streamed training run (and its evaluation); prints the figures as JSON."""
    import torch

    sys.path.insert(0, str(REPO))
    torch.set_num_threads(threads)
    from genremert.training import run

    start = time.perf_counter()
    results = run.main(
        [
            "--model_type", "crnn_fgnl", "--config_overrides", TINY_CRNN, "--slice_seconds", "1.0",
            "--dataset_name", corpus, "--label_column_name", "genre", "--streaming", "--class_names", ",".join(GENRES),
            "--max_steps", str(steps), "--per_device_train_batch_size", str(batch_size), "--learning_rate", "3e-3",
            "--logging_steps", str(max(1, steps // 4)), "--save_strategy", "no", "--report_to", "none",
            "--data_dir", os.path.join(output_dir, "cache"), "--output_dir", output_dir, "--do_train", "--do_eval",
            "--log_level", "error",
        ]
    )  # fmt: skip
    figures = {
        "peak_rss_bytes": peak_rss_bytes(),
        "seconds": time.perf_counter() - start,
        "eval_song_accuracy": results.get("eval_song_accuracy"),
    }
    print("BENCHMARK " + json.dumps(figures))


def measure(corpus: Path, output_dir: Path, steps: int, batch_size: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", str(corpus), str(output_dir), str(steps), str(batch_size)]
    command += [str(threads)]
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    line = next((line for line in completed.stdout.splitlines() if line.startswith("BENCHMARK ")), None)
    if completed.returncode != 0 or line is None:
        raise SystemExit(f"the run on {corpus} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return json.loads(line[len("BENCHMARK ") :])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, nargs=2, default=[2000, 10000], help="training songs: small, large")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each song")
    parser.add_argument("--shards", type=int, default=20, help="parquet shards of each training split")
    parser.add_argument("--steps", type=int, default=320, help="--max_steps of each run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (small, large) per corpus")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        corpus, output_dir, steps, batch_size, threads = args.child
        child(corpus, output_dir, int(steps), int(batch_size), int(threads))
        return 0

    with tempfile.TemporaryDirectory(prefix="genremert_streaming_") as temporary:
        root = Path(temporary)
        corpora = {}
        for songs in args.songs:
            start = time.perf_counter()
            size = write_corpus(root / f"corpus_{songs}", songs, args.shards, args.seconds)
            corpora[songs] = root / f"corpus_{songs}"
            print(
                f"corpus of {songs} songs: {args.shards} shards, {size / 2**20:.1f} MiB, "
                f"written in {time.perf_counter() - start:.1f} s"
            )
        slices = args.steps * args.batch_size
        print(f"each run: {args.steps} steps × {args.batch_size} slices = {slices} slices of {args.seconds:g} s")
        figures = {songs: [] for songs in args.songs}
        ratios = []
        for round_index in range(args.rounds):
            for songs in args.songs:  # interleaved: small, large, small, large, ...
                output_dir = root / f"run_{songs}_{round_index}"
                figures[songs].append(measure(corpora[songs], output_dir, args.steps, args.batch_size, args.threads))
                row = figures[songs][-1]
                print(
                    f"round {round_index}, {songs:>6} songs ({slices / songs:.2f} passes): peak RSS "
                    f"{row['peak_rss_bytes'] / 2**20:7.1f} MiB, {row['seconds']:6.1f} s, eval song accuracy "
                    f"{row['eval_song_accuracy']:.3f}, load {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
                )
            small, large = (figures[songs][-1]["peak_rss_bytes"] for songs in args.songs)
            ratios.append(large / small)
    ratio = statistics.median(ratios)
    print(
        f"peak RSS {args.songs[1]} / {args.songs[0]} songs: median of {len(ratios)} rounds {ratio:.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)}; target <= {TARGET_RATIO}); load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
