"""Peak memory (RSS) of the song-level pipeline on a file, for a short and a long recording: is it flat in the length?

Writes generated stereo 44.1 kHz 16-bit wav files (1 and 60 minutes by default) and a tiny random model (the tiny
GenreMERT of the tests, 24 kHz, 1 s slices; or `--model crnn_fgnl`) into a temporary folder, then classifies each file
in a fresh Python process (`pipeline("audio-classification", model=folder, trust_remote_code=True)`, the way users
load it) and reads that process's peak resident set size (`resource.getrusage(...).ru_maxrss`): once after loading the
pipeline and a warm-up call on a short array, once after classifying the file (a plain call, the song answer only).
Prints one row per recording and the ratio of the longest recording's peak to the shortest one's. Target: <= 1.3 (the
pipeline decodes, resamples and slices a file block by block, so its memory does not grow with the length). Exits
with status 1 when the target is missed.

    python benchmarks/benchmark_pipeline_memory.py [--minutes 1 60] [--model genremert] [--slice-batch-size 8]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


REPO = Path(__file__).resolve().parent.parent
SOURCE_RATE = 44100  # the generated files: stereo 44.1 kHz 16-bit PCM, resampled by the pipeline to the model's rate
BLOCK_SECONDS = 10  # the files are written block by block, so that writing them needs little memory either


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (`ru_maxrss` is in KiB on Linux, in bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def write_recording(path: Path, minutes: float, seed: int = 0) -> None:
    """Stereo noise at -6 dBFS, written `BLOCK_SECONDS` at a time."""
    import soundfile

    rng = np.random.default_rng(seed)
    remaining = int(round(minutes * 60 * SOURCE_RATE))
    with soundfile.SoundFile(path, "w", SOURCE_RATE, 2, subtype="PCM_16", format="WAV") as handle:
        while remaining > 0:
            frames = min(remaining, BLOCK_SECONDS * SOURCE_RATE)
            handle.write(rng.uniform(-0.5, 0.5, (frames, 2)).astype(np.float32))
            remaining -= frames


def save_model(folder: Path, model_name: str) -> None:
    import torch

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config

    from genremert import CRNNFGNLForAudioClassification, GenreMERTForAudioClassification

    model_class, make_config = {
        "genremert": (GenreMERTForAudioClassification, tiny_genremert_config),
        "crnn_fgnl": (CRNNFGNLForAudioClassification, tiny_crnn_fgnl_config),
    }[model_name]
    torch.manual_seed(0)
    model_class(make_config(id2label={0: "blues", 1: "jazz", 2: "rock"})).save_pretrained(folder)


def child(model_folder: str, audio_path: str, slice_batch_size: int, threads: int) -> None:
    """Runs in a fresh process: load the pipeline, warm it up, classify the file; print the figures as JSON."""
    import torch
    from transformers import pipeline
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.set_num_threads(threads)
    classifier = pipeline("audio-classification", model=model_folder, trust_remote_code=True)
    rate = classifier.feature_extractor.sampling_rate
    classifier(np.random.default_rng(1).uniform(-0.5, 0.5, 3 * rate).astype(np.float32))  # warm-up
    batches = []  # slices per forward pass, counted by a hook (a plain call: `return_slices` answers take memory too)
    classifier.model.register_forward_pre_hook(
        lambda module, args, kwargs: batches.append(next(iter(kwargs.values())).shape[0]), with_kwargs=True
    )
    loaded = peak_rss_bytes()
    start = time.perf_counter()
    result = classifier(audio_path, slice_batch_size=slice_batch_size)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "loaded": loaded,
                "peak": peak_rss_bytes(),
                "seconds": seconds,
                "slices": sum(batches),
                "rate": rate,
                "top": result[0]["label"],
            }
        )
    )


def measure(model_folder: Path, audio_path: Path, args, modules_cache: Path) -> dict:
    environment = {**os.environ, "HF_MODULES_CACHE": str(modules_cache), "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--child", str(model_folder), str(audio_path)]
    command += ["--slice-batch-size", str(args.slice_batch_size), "--threads", str(args.threads)]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=model_folder.parent)
    if completed.returncode != 0:
        raise RuntimeError(f"the measuring process failed on {audio_path}:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 60.0], help="recording lengths")
    parser.add_argument("--model", choices=["genremert", "crnn_fgnl"], default="genremert")
    parser.add_argument("--slice-batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the measuring process")
    parser.add_argument("--target", type=float, default=1.3, help="largest acceptable peak ratio, longest / shortest")
    parser.add_argument("--child", nargs=2, metavar=("MODEL_FOLDER", "AUDIO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.slice_batch_size, args.threads)
        return
    minutes = sorted(args.minutes)
    if len(minutes) < 2:
        parser.error("--minutes needs at least two lengths to compare")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_model(tmp / "model", args.model)
        rows = []
        for length in minutes:
            audio = tmp / f"noise_{length:g}min.wav"
            write_recording(audio, length)
            rows.append((length, audio.stat().st_size, measure(tmp / "model", audio, args, tmp / "modules")))
            audio.unlink()
    rate = rows[0][2]["rate"]
    print(
        f"Pipeline peak memory (RSS, a fresh process per recording): tiny {args.model} at {rate} Hz, "
        f"slice_batch_size={args.slice_batch_size}, stereo {SOURCE_RATE} Hz 16-bit wav files of generated noise"
    )
    print(f"  {'recording':>10s} {'file':>9s} {'slices':>7s} {'time':>8s} {'peak after loading':>19s} {'peak':>9s}")
    for length, size, figures in rows:
        print(
            f"  {length:>6g} min {size / 2**20:>5.0f} MiB {figures['slices']:>7d} {figures['seconds']:>6.1f} s "
            f"{figures['loaded'] / 2**20:>15.0f} MiB {figures['peak'] / 2**20:>5.0f} MiB"
        )
    ratio = rows[-1][2]["peak"] / rows[0][2]["peak"]
    verdict = "met" if ratio <= args.target else "NOT met"
    comparison = f"{minutes[-1]:g} min / {minutes[0]:g} min"
    print(f"  ratio of the peaks, {comparison}: {ratio:.2f} (target <= {args.target}: {verdict})")
    if ratio > args.target:
        sys.exit(1)


if __name__ == "__main__":
    main()
