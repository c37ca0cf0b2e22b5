"""Decode + resample + slice throughput of music_datasets, in seconds of audio per second per core.

Writes GTZAN-like clips (30 s, 22,050 Hz PCM wav, decoded to 24 kHz for GenreMERT) and
artist20-like tracks (4 min, 16 kHz mono MP3, read at 16 kHz for CRNN_FGNL) into a temporary
folder, then reads every slice in one process (one core) in three ways:

- in song order without a cache (each song is decoded once, its slices cut from it),
- in shuffled order without a cache (the worst case: every slice decodes its whole song),
- in shuffled order from a filled on-disk cache (memory-mapped float32 .npy).

It also times the up-front file check (check_audio_file) and building the slice table from the
headers. Target: >= 200x real time per core for the first and third rows.

    python benchmarks/benchmark_data.py [--gtzan-songs 20] [--artist20-songs 4]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from datasets import Dataset

import genremert
from genremert.data import songs as song_table


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def music_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Tones with vibrato plus noise bursts: something an MP3 encoder has to work for."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = sum(0.1 * np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 5 * t)) for f in rng.uniform(100, 2000, 5))
    x = x + 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.5)
    return x.astype(np.float32)


def write_songs(folder: Path, count: int, seconds: float, rate: int, fmt: str) -> Dataset:
    paths = []
    for i in range(count):
        path = folder / f"song{i:03d}.{fmt}"
        if fmt == "mp3":  # constant bit rate, like artist20's 32 kbps files
            with sf.SoundFile(path, "w", rate, 1, format="MP3", bitrate_mode="CONSTANT", compression_level=0.9) as f:
                f.write(music_like(seconds, rate, i))
        else:
            sf.write(path, music_like(seconds, rate, i), rate, format=fmt.upper())
        paths.append(str(path))
    features = song_table.song_features(["x"], False)
    return Dataset.from_dict(
        {"audio": paths, "label": [0] * count, "song_id": [f"s{i}" for i in range(count)]}, features=features
    )


def read_all(slices, order) -> float:
    start = time.perf_counter()
    for i in order:
        assert slices[int(i)]["input_values"].dtype == np.float32
    return time.perf_counter() - start


def bench(
    name: str, songs: Dataset, total_seconds: float, rate: int, slice_seconds: float, overlap: float, cache_dir: Path
) -> None:
    start = time.perf_counter()
    bad = genremert.validate_audio_files(songs["audio"], num_workers=1)
    check = time.perf_counter() - start
    assert not bad, bad
    start = time.perf_counter()
    slices = genremert.slice_songs(songs, rate, slice_seconds, overlap, num_workers=1)
    table = time.perf_counter() - start
    order = np.arange(len(slices))
    shuffled = np.random.default_rng(0).permutation(len(slices))
    sequential = read_all(slices, order)
    random_order = read_all(genremert.slice_songs(songs, rate, slice_seconds, overlap, num_workers=1), shuffled)
    cached = genremert.slice_songs(songs, rate, slice_seconds, overlap, cache_dir=cache_dir, num_workers=1)
    fill = read_all(cached, order)
    from_cache = read_all(
        genremert.slice_songs(songs, rate, slice_seconds, overlap, cache_dir=cache_dir, num_workers=1), shuffled
    )
    print(
        f"\n{name}: {songs.num_rows} songs, {total_seconds / 60:.1f} min of audio, {len(slices)} slices of "
        f"{slice_seconds} s (overlap {overlap} s) at {rate} Hz"
    )
    rows = [
        ("up-front file check", check),
        ("slice table from headers", table),
        ("decode+resample+slice, song order, no cache", sequential),
        ("decode+resample+slice, shuffled, no cache", random_order),
        ("first pass filling the cache, song order", fill),
        ("shuffled, from the filled cache", from_cache),
    ]
    for label, seconds in rows:
        print(f"  {label:<46s} {seconds:8.3f} s   {total_seconds / seconds:9.0f}x real time per core")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gtzan-songs", type=int, default=20)
    parser.add_argument("--artist20-songs", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "gtzan").mkdir()
        (tmp / "artist20").mkdir()
        gtzan = write_songs(tmp / "gtzan", args.gtzan_songs, 30.0, 22050, "wav")
        bench("GTZAN-like wav, 22.05 -> 24 kHz", gtzan, 30.0 * args.gtzan_songs, 24000, 10.0, 1.0, tmp / "cache")
        artist20 = write_songs(tmp / "artist20", args.artist20_songs, 240.0, 16000, "mp3")
        bench("artist20-like mp3, 16 kHz", artist20, 240.0 * args.artist20_songs, 16000, 3.0, 0.0, tmp / "cache")


if __name__ == "__main__":
    main()
