"""Decode + resample + slice throughput of the data path, as ratios of variants interleaved in one process.

Writes three sets of songs into a temporary folder: GTZAN-like clips (30 s, 22,050 Hz mono 16-bit wav, decoded to
24 kHz for GenreMERT), stereo 44.1 kHz 16-bit wav songs (60 s, to 24 kHz: CD audio, where the mix-down matters) and
artist20-like tracks (4 min, 16 kHz mono MP3, read at 16 kHz for CRNN_FGNL). One process (one core, one thread) then
runs `--rounds` rounds; each round times every variant once, in the same order (A B A B ...), so that other jobs on a
shared machine slow both sides of a comparison alike. Printed per comparison: the median over rounds of the per-round
ratio, its spread (min-max over rounds), and `os.getloadavg()` before and after.

Variants, for each set of songs:

- `decode_audio` of every song, against the decode of before issue #23 (libsndfile's float32 read and
  `ndarray.mean(axis=1)`, then the same soxr; without the NaN/level check, ~2 % of a decode): the speed-up, and
  `decode_audio`'s seconds of audio per CPU second (x real time per core; target >= 400x for 44.1 kHz stereo wav);
- slices read in song order vs shuffled, without a cache (shuffled decodes the whole song for every slice: timed on
  `--uncached-shuffled-slices` slices and scaled to all of them);
- filling the cache (a fresh folder each round), then slices read in song order vs shuffled from the filled cache,
  `--cache-passes` passes each through fresh slice tables (new processes' memos), the time of one pass reported
  (target: shuffled >= 0.8x the speed of song order);
- the up-front file check (check_audio_file) and the slice table from the headers.

For the stereo set it also splits one decode into its steps (read, mix-down, resample, check), each timed per round.

    python benchmarks/benchmark_data.py [--rounds 5] [--gtzan-songs 20] [--stereo-songs 8] [--artist20-songs 2]
"""

import os


os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: set before numpy and soxr load their thread pools

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from datasets import Dataset  # noqa: E402

import audio_genremert  # noqa: E402
import genremert  # noqa: E402
from genremert.data import songs as song_table  # noqa: E402


def music_like(seconds: float, rate: int, seed: int, channels: int = 1) -> np.ndarray:
    """Tones with vibrato plus noise bursts (something an MP3 encoder has to work for); `(samples,)` or
    `(samples, channels)`, each channel its own mix."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    columns = []
    for _ in range(channels):
        x = sum(0.1 * np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 5 * t)) for f in rng.uniform(100, 2000, 5))
        columns.append(x + 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.5))
    return (columns[0] if channels == 1 else np.stack(columns, axis=1)).astype(np.float32)


def write_songs(folder: Path, count: int, seconds: float, rate: int, fmt: str, channels: int = 1) -> Dataset:
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = folder / f"song{i:03d}.{fmt}"
        if fmt == "mp3":  # constant bit rate, like artist20's 32 kbps files
            with sf.SoundFile(path, "w", rate, 1, format="MP3", bitrate_mode="CONSTANT", compression_level=0.9) as f:
                f.write(music_like(seconds, rate, i))
        else:
            sf.write(path, music_like(seconds, rate, i, channels), rate, format=fmt.upper(), subtype="PCM_16")
        paths.append(str(path))
    features = song_table.song_features(["x"], False)
    return Dataset.from_dict(
        {"audio": paths, "label": [0] * count, "song_id": [f"s{i}" for i in range(count)]}, features=features
    )


def decode_before_issue_23(path: str, sampling_rate: int) -> np.ndarray:
    """The decode of before issue #23: libsndfile converts to float32, `ndarray.mean` mixes down; same soxr."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)  # (frames, channels)
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    mono = audio_genremert.resample(mono, rate, sampling_rate)
    target = audio_genremert.num_samples_at(len(audio), rate, sampling_rate)
    return mono[:target] if len(mono) >= target else np.pad(mono, (0, target - len(mono)))


def timed(work) -> tuple:
    """`(wall seconds, CPU seconds of this process)` of `work()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def read_slices(slices, order) -> None:
    for i in order:
        assert slices[int(i)]["input_values"].dtype == np.float32


class Rounds:
    """Times of named variants over interleaved rounds, and the per-round ratios of pairs of them."""

    def __init__(self):
        self.wall, self.cpu = {}, {}

    def time(self, name: str, work, scale: float = 1.0) -> None:
        wall, cpu = timed(work)
        self.wall.setdefault(name, []).append(wall * scale)
        self.cpu.setdefault(name, []).append(cpu * scale)

    def median(self, name: str, cpu: bool = False) -> float:
        return float(np.median((self.cpu if cpu else self.wall)[name]))

    def ratio(self, slower: str, faster: str) -> tuple:
        """Median, min and max over rounds of wall(slower) / wall(faster): how many times faster `faster` is."""
        ratios = np.array(self.wall[slower]) / np.array(self.wall[faster])
        return float(np.median(ratios)), float(ratios.min()), float(ratios.max())


def bench(name: str, songs: Dataset, song_seconds: float, rate: int, slice_s: float, overlap: float, args, work: Path):
    audio_seconds = song_seconds * songs.num_rows
    paths = list(songs["audio"])
    kwargs = dict(sampling_rate=rate, slice_seconds=slice_s, overlap_seconds=overlap, num_workers=1)
    num_slices = len(genremert.slice_songs(songs, **kwargs))
    order = np.arange(num_slices)
    shuffled = np.random.default_rng(0).permutation(num_slices)
    uncached_shuffled = shuffled[: args.uncached_shuffled_slices]
    cache = work / "cache"
    np.testing.assert_array_equal(audio_genremert.decode_audio(paths[0], rate), decode_before_issue_23(paths[0], rate))
    load = os.getloadavg()
    rounds = Rounds()
    for _ in range(args.rounds):
        rounds.time("up-front file check", lambda: genremert.validate_audio_files(paths, num_workers=1))
        rounds.time("slice table from headers", lambda: genremert.slice_songs(songs, **kwargs))
        rounds.time("decode, before #23", lambda: [decode_before_issue_23(p, rate) for p in paths])
        rounds.time("decode_audio", lambda: [audio_genremert.decode_audio(p, rate) for p in paths])
        rounds.time("song order, no cache", lambda: read_slices(genremert.slice_songs(songs, **kwargs), order))
        rounds.time(
            "shuffled, no cache",
            lambda: read_slices(genremert.slice_songs(songs, **kwargs), uncached_shuffled),
            scale=num_slices / len(uncached_shuffled),
        )
        shutil.rmtree(cache, ignore_errors=True)
        rounds.time("filling the cache", lambda: genremert.fill_cache(songs, rate, cache, num_workers=1))
        for label, cache_order in (("song order, from the cache", order), ("shuffled, from the cache", shuffled)):
            tables = [genremert.slice_songs(songs, cache_dir=cache, **kwargs) for _ in range(args.cache_passes)]
            rounds.time(label, lambda: [read_slices(table, cache_order) for table in tables], 1 / args.cache_passes)
    print(
        f"\n{name}: {songs.num_rows} songs, {audio_seconds / 60:.1f} min of audio, {num_slices} slices of {slice_s} s "
        f"(overlap {overlap} s) at {rate} Hz; {args.rounds} rounds; load {_load(load)} -> {_load(os.getloadavg())}"
    )
    print(f"  {'median of rounds':<34s} {'wall s':>8s} {'x real time':>12s} {'per CPU s':>10s}")
    for label in rounds.wall:
        wall, cpu = rounds.median(label), rounds.median(label, cpu=True)
        print(f"  {label:<34s} {wall:8.3f} {audio_seconds / wall:11.0f}x {audio_seconds / cpu:9.0f}x")
    comparisons = [
        ("decode_audio vs the decode before #23", "decode, before #23", "decode_audio", None),
        ("shuffled / song order, from the cache", "song order, from the cache", "shuffled, from the cache", 0.8),
        ("shuffled / song order, no cache", "song order, no cache", "shuffled, no cache", None),
    ]
    print(f"  {'speed ratio (per round)':<42s} {'median':>7s} {'min-max':>13s}")
    for label, slower, faster, target in comparisons:
        median, low, high = rounds.ratio(slower, faster)
        verdict = "" if target is None else f"   target >= {target}: {'met' if median >= target else 'NOT met'}"
        print(f"  {label:<42s} {median:6.2f}x {low:6.2f}-{high:<6.2f}{verdict}")
    return rounds


def decode_steps(path: str, rate: int, rounds: int) -> None:
    """Where one decode of a stereo 44.1 kHz 16-bit wav goes: each step timed once per round, interleaved."""
    import soxr

    info = sf.info(path)
    seconds = info.frames / info.samplerate
    floats = sf.read(path, dtype="float32", always_2d=True)[0]  # (frames, channels)
    integers = sf.read(path, dtype="int16", always_2d=True)[0]
    mono = audio_genremert.average_channels(integers, 1, 2.0**15)
    resampled = audio_genremert.resample(mono, info.samplerate, rate)
    steps = {
        "read as float32 (libsndfile converts)": lambda: sf.read(path, dtype="float32", always_2d=True),
        "read as int16 (what decode_audio does)": lambda: sf.read(path, dtype="int16", always_2d=True),
        "mix-down: ndarray.mean(axis=1)": lambda: floats.mean(axis=1),
        "mix-down: average_channels of int16": lambda: audio_genremert.average_channels(integers, 1, 2.0**15),
        "resample: soxr HQ (decode_audio)": lambda: audio_genremert.resample(mono, info.samplerate, rate),
        "resample: soxr VHQ (not used)": lambda: soxr.resample(mono, info.samplerate, rate, quality="VHQ"),
        "resample: soxr MQ (not used)": lambda: soxr.resample(mono, info.samplerate, rate, quality="MQ"),
        "NaN / level check": lambda: audio_genremert._check_samples(resampled, 0, rate, path),
        "decode_audio, whole": lambda: audio_genremert.decode_audio(path, rate),
    }
    load = os.getloadavg()
    times = Rounds()
    for _ in range(rounds):
        for label, step in steps.items():
            times.time(label, step)
    print(f"\nwhere one decode goes ({seconds:.0f} s stereo 44.1 kHz 16-bit wav -> {rate} Hz mono), median of {rounds} "
          f"rounds, load {_load(load)} -> {_load(os.getloadavg())}")  # fmt: skip
    for label in steps:
        wall = times.median(label)
        print(f"  {label:<40s} {1000 * wall:8.1f} ms {seconds / wall:9.0f}x real time")


def _load(load) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every variant")
    parser.add_argument("--gtzan-songs", type=int, default=20)
    parser.add_argument("--stereo-songs", type=int, default=8)
    parser.add_argument("--artist20-songs", type=int, default=2)
    parser.add_argument("--uncached-shuffled-slices", type=int, default=12, help="slices read shuffled without cache")
    parser.add_argument(
        "--cache-passes", type=int, default=5, help="passes over the slices (fresh tables) per cache-read timing"
    )
    args = parser.parse_args()
    print(f"numpy {np.__version__}, soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__}), "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, {os.cpu_count()} CPUs")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gtzan = write_songs(tmp / "gtzan", args.gtzan_songs, 30.0, 22050, "wav")
        bench("GTZAN-like mono wav, 22.05 -> 24 kHz", gtzan, 30.0, 24000, 10.0, 1.0, args, tmp / "g")
        stereo = write_songs(tmp / "stereo", args.stereo_songs, 60.0, 44100, "wav", channels=2)
        bench("stereo 44.1 kHz wav -> 24 kHz mono", stereo, 60.0, 24000, 10.0, 1.0, args, tmp / "s")
        decode_steps(stereo["audio"][0], 24000, args.rounds)
        artist20 = write_songs(tmp / "artist20", args.artist20_songs, 240.0, 16000, "mp3")
        bench("artist20-like mp3, 16 kHz", artist20, 240.0, 16000, 3.0, 0.0, args, tmp / "a")


if __name__ == "__main__":
    main()
