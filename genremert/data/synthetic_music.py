"""A synthetic singer-identification dataset, generated from a seed in seconds with no download.

Each class is a "singer": a harmonic voice with its own formant envelope, spectral tilt, vibrato,
breathiness and pitch range, singing random melodies over the chords of the song. The voice is
mixed over an accompaniment whose instruments, drum pattern and tempo are fixed per **album**, so
the shortcuts of real music exist here too: songs of one album share their accompaniment (album
leakage when albums are split across train and test), and each singer prefers one instrument
(an accompaniment shortcut that does not carry over to albums where the singer uses another).

The paper's Fig. 1 protocol is built in: ``bias_class`` adds band-limited white noise (3–5 kHz by
default) to every *training* song of one class; the test songs come clean (``test``) and with the
same kind of noise added to every class (``test_noisy``). The clean audio of a song never depends
on the bias settings, and the noise comes from its own random stream, so the two test conditions
differ by exactly the noise.

``genremert.data.synthetic.load_synthetic`` wraps :func:`generate_synthetic_music` into a song-level
``datasets.DatasetDict``; this module only renders audio and writes wav files. ``genremert.data.attention_audio``
renders the same singers with the voice and a bias instrument on known frames (a ground-truth attention benchmark).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf


GENERATOR_VERSION = 2  # bump when the rendering changes, so old caches are not reused
INSTRUMENT_POOL = ("bass", "pad", "pluck", "organ", "brass")
DRUM_PATTERNS = {  # 16 steps of one 4/4 bar: (kick, snare, hat)
    "rock": ("1000000010000000", "0000100000001000", "1010101010101010"),
    "four_on_floor": ("1000100010001000", "0000100000001000", "0010001000100010"),
    "halftime": ("1000000000000000", "0000000010000000", "1010101010101010"),
    "shuffle": ("1000001010000000", "0000100000001001", "1001001010010010"),
    "none": ("0" * 16, "0" * 16, "0" * 16),
}
SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class SyntheticMusicConfig:
    """Every parameter of the synthetic dataset; the cache folder is keyed by a hash of them.

    ``difficulty`` (0..1) is the one knob for how hard the task is: it pulls the singers' voice
    parameters toward each other, widens the per-note and per-song variation of each voice, and
    lowers the voice against the accompaniment. At the default 0.5 a linear classifier on the
    mean log-mel spectrum of a song is far from perfect, while a model that follows the voice
    over time can learn it.
    """

    num_classes: int = 5  # singers
    albums_per_class: int = 4  # "album" split: 1 test, 1 validation, the rest train (per singer)
    songs_per_album: int = 4
    song_seconds: float = 20.0
    sampling_rate: int = 16000
    difficulty: float = 0.5
    seed: int = 0
    split: str = "album"  # "album" (no album in two splits) or "song" (albums leak across splits)
    accompaniment_correlation: float = 0.6  # probability an album features its singer's favourite instrument
    bias_class: Optional[int] = None  # class whose training songs get the band noise (Fig. 1)
    bias_band_hz: Tuple[float, float] = (3000.0, 5000.0)
    bias_noise_db: float = -15.0  # noise RMS relative to the clean song's RMS, in dB
    # "everywhere": the noise covers every frame of the song (paper Fig. 1); "bursts": it covers `bias_burst_fraction`
    # of the time in bursts of `bias_burst_seconds`, so an attention over time can route around it.
    bias_mode: str = "everywhere"
    bias_burst_fraction: float = 0.3
    bias_burst_seconds: float = 0.5

    def __post_init__(self):
        self.bias_band_hz = tuple(float(f) for f in self.bias_band_hz)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.split not in ("album", "song"):
            raise ValueError(f"split must be 'album' or 'song', got {self.split!r}")
        if self.split == "album" and self.albums_per_class < 3:
            raise ValueError(
                f"albums_per_class must be >= 3 for split='album' (1 test, 1 validation, >= 1 train), "
                f"got {self.albums_per_class}"
            )
        if self.split == "song" and self.albums_per_class * self.songs_per_album < 3:
            raise ValueError("split='song' needs at least 3 songs per class (albums_per_class * songs_per_album)")
        if self.songs_per_album < 1:
            raise ValueError(f"songs_per_album must be >= 1, got {self.songs_per_album}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if self.song_seconds <= 0:
            raise ValueError(f"song_seconds must be > 0, got {self.song_seconds}")
        if self.sampling_rate < 8000:
            raise ValueError(f"sampling_rate must be >= 8000 Hz, got {self.sampling_rate}")
        low, high = self.bias_band_hz
        if not 0 < low < high <= self.sampling_rate / 2:
            raise ValueError(
                f"bias_band_hz must satisfy 0 < low < high <= sampling_rate/2 = {self.sampling_rate / 2}, "
                f"got {self.bias_band_hz}"
            )
        if self.bias_mode not in ("everywhere", "bursts"):
            raise ValueError(f"bias_mode must be 'everywhere' or 'bursts', got {self.bias_mode!r}")
        if not 0.0 < self.bias_burst_fraction <= 1.0 or self.bias_burst_seconds <= 0:
            raise ValueError(
                f"bias_burst_fraction must be in (0, 1] and bias_burst_seconds > 0, got {self.bias_burst_fraction}, "
                f"{self.bias_burst_seconds}"
            )
        if self.bias_class is not None and not 0 <= self.bias_class < self.num_classes:
            raise ValueError(f"bias_class must be in [0, {self.num_classes - 1}] or None, got {self.bias_class}")

    @property
    def class_names(self) -> List[str]:
        return [f"singer_{k}" for k in range(self.num_classes)]

    def clean_key(self) -> str:
        """Hash of everything that shapes the clean audio (not the bias settings)."""
        fields = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k
            not in (
                "bias_class",
                "bias_band_hz",
                "bias_noise_db",
                "bias_mode",
                "bias_burst_fraction",
                "bias_burst_seconds",
            )
            and k != "split"
        }
        fields["version"] = GENERATOR_VERSION
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def noise_key(self) -> str:
        fields = {"band": list(self.bias_band_hz), "db": self.bias_noise_db, "version": GENERATOR_VERSION}
        if self.bias_mode != "everywhere":  # the keys of earlier caches stay valid
            fields.update(mode=self.bias_mode, fraction=self.bias_burst_fraction, seconds=self.bias_burst_seconds)
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class SyntheticSong:
    """One generated song: where its wav files are and which split it belongs to."""

    song_id: str  # "singer_<k>/album_<a>/song_<s>"
    label: int
    album: str  # "singer_<k>/album_<a>"
    split: str
    clean_path: str
    noisy_path: str  # the same song plus band noise (written for biased training songs and test songs)


@dataclass
class SyntheticMusic:
    """The generated dataset: its songs, the folder holding them, and the metadata a bias probe needs."""

    config: SyntheticMusicConfig
    root: str
    songs: List[SyntheticSong] = field(default_factory=list)

    def metadata(self) -> Dict:
        return {
            "class_names": self.config.class_names,
            "bias_class": self.config.bias_class,
            "bias_class_name": None
            if self.config.bias_class is None
            else self.config.class_names[self.config.bias_class],
            "bias_band_hz": list(self.config.bias_band_hz),
            "bias_noise_db": self.config.bias_noise_db,
            "sampling_rate": self.config.sampling_rate,
            "difficulty": self.config.difficulty,
            "split": self.config.split,
            "seed": self.config.seed,
            "root": self.root,
            "config": dataclasses.asdict(self.config),
        }


# --------------------------------------------------------------------------------------------- #
# Random draws of singers, albums and songs (all from numpy Generators seeded by tuples of ints)
# --------------------------------------------------------------------------------------------- #


def _rng(*keys: int) -> np.random.Generator:
    """An independent random stream for a tuple of integer keys (stable across runs and machines)."""
    return np.random.default_rng([int(k) for k in keys])


def _shrink(value: float, centre: float, factor: float) -> float:
    return centre + (value - centre) * factor


def _draw_singer(config: SyntheticMusicConfig, k: int) -> Dict:
    """Voice parameters of singer k. Difficulty pulls them toward the population centre."""
    rng = _rng(config.seed, 1, k)
    spread = 1.0 - 0.8 * config.difficulty
    formants = [
        _shrink(rng.uniform(300, 900), 600, spread),
        _shrink(rng.uniform(900, 2300), 1600, spread),
        _shrink(rng.uniform(2300, 3400), 2850, spread),
        _shrink(rng.uniform(3400, 4400), 3900, spread),
    ]
    return {
        "formants": np.array(formants),
        "bandwidths": np.array([rng.uniform(60, 140), rng.uniform(80, 200), rng.uniform(120, 260), 250.0]),
        "formant_gains": np.array([1.0, rng.uniform(0.4, 0.9), rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.3)]),
        "tilt_db_per_octave": _shrink(rng.uniform(-12, -3), -7.5, spread),
        "vibrato_rate": _shrink(rng.uniform(4.5, 7.0), 5.75, spread),
        "vibrato_depth": _shrink(rng.uniform(0.1, 0.6), 0.35, spread),  # semitones
        "low_midi": _shrink(rng.uniform(45, 62), 53.5, spread),  # lowest note of the range
        "breathiness": _shrink(rng.uniform(0.0, 0.25), 0.12, spread),
        "favourite_instrument": int(rng.integers(len(INSTRUMENT_POOL))),
    }


def _draw_album(config: SyntheticMusicConfig, singer: Dict, k: int, a: int) -> Dict:
    """Accompaniment style of album a of singer k: instruments, drum pattern, tempo, key."""
    rng = _rng(config.seed, 2, k, a)
    pool = list(range(len(INSTRUMENT_POOL)))
    if rng.random() < config.accompaniment_correlation:
        first = singer["favourite_instrument"]
    else:
        first = int(rng.choice([i for i in pool if i != singer["favourite_instrument"]]))
    second = int(rng.choice([i for i in pool if i != first]))
    drums = sorted(DRUM_PATTERNS)
    return {
        "instruments": (INSTRUMENT_POOL[first], INSTRUMENT_POOL[second]),
        "drums": drums[int(rng.integers(len(drums)))],
        "tempo": float(rng.uniform(80, 140)),
        "key_midi": int(rng.integers(0, 12)),
        "minor": bool(rng.random() < 0.5),
        "mix": rng.uniform(0.6, 1.0, size=3),  # gains of instrument 1, instrument 2, drums
    }


# --------------------------------------------------------------------------------------------- #
# Rendering
# --------------------------------------------------------------------------------------------- #


def _midi_to_hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _harmonic_sum(phase: np.ndarray, harmonic_amps: np.ndarray) -> np.ndarray:
    """Σ_h a_h(t) sin(h·phase(t)) via the Chebyshev recursion sin((h+1)x) = 2cos(x)sin(hx) − sin((h−1)x).

    phase: (samples,); harmonic_amps: (harmonics, samples) or (harmonics,). One multiply-add per
    harmonic instead of one sine per harmonic.
    """
    two_cos = 2.0 * np.cos(phase)
    s_prev = np.zeros_like(phase)
    s_cur = np.sin(phase)
    out = np.zeros_like(phase)
    for h in range(harmonic_amps.shape[0]):
        out += harmonic_amps[h] * s_cur
        s_prev, s_cur = s_cur, two_cos * s_cur - s_prev
    return out


def _formant_envelope(freqs: np.ndarray, singer: Dict, formants: np.ndarray) -> np.ndarray:
    """Linear amplitude of the voice's spectral envelope at `freqs` (any shape)."""
    f = np.asarray(freqs)[..., None]
    resonances = singer["formant_gains"] / (1.0 + ((f - formants) / singer["bandwidths"]) ** 2)
    tilt = (np.maximum(freqs, 50.0) / 200.0) ** (singer["tilt_db_per_octave"] / 6.02)
    return (resonances.sum(-1) + 0.02) * tilt


def _chord_progression(rng: np.random.Generator, minor: bool, num_bars: int) -> List[List[int]]:
    """Chords (scale-degree semitone offsets from the key) for each bar."""
    scale = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    degrees = [0, 3, 4, 5] if not minor else [0, 3, 4, 5, 6]
    progression = [int(d) for d in rng.choice(degrees, size=4)]
    progression[0] = 0
    chords = []
    for bar in range(num_bars):
        d = progression[bar % 4]
        chords.append(
            [
                scale[d % 7] + 12 * (d // 7),
                scale[(d + 2) % 7] + 12 * ((d + 2) // 7),
                scale[(d + 4) % 7] + 12 * ((d + 4) // 7),
            ]
        )
    return chords


def _render_voice(config, singer, album, chords, rng, n, sr, rest_probability: float = 0.15) -> np.ndarray:
    """The singer's melody: notes from the current chord and scale, with vibrato and formants; each note is a rest with
    `rest_probability` (the default, 0.15, gives the benchmark's voice; ``attention_audio`` sings with no rests)."""
    difficulty = config.difficulty
    beat = 60.0 / album["tempo"]
    bar = 4 * beat
    scale = [0, 2, 3, 5, 7, 8, 10] if album["minor"] else [0, 2, 4, 5, 7, 9, 11]
    low = singer["low_midi"] + rng.normal(0, 0.5 + 2 * difficulty)  # per-song register shift
    # Per-song formant shift (same singer, another song / mic / mood): wider with difficulty.
    song_formants = singer["formants"] * np.exp(rng.normal(0, 0.02 + 0.08 * difficulty, size=4))
    f0 = np.zeros(n)
    amp = np.zeros(n)
    note_formants = np.zeros((n, 4))
    t = 0.0
    while t < n / sr:
        duration = beat * float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
        start, stop = int(t * sr), min(n, int((t + duration) * sr))
        t += duration
        if rng.random() < rest_probability or stop - start < 16:  # a rest
            continue
        chord = chords[min(int(start / sr / bar), len(chords) - 1)]
        pool = chord + [s for s in scale if rng.random() < 0.3]
        pitch_class = album["key_midi"] + int(rng.choice(pool))
        candidates = [m for m in range(int(low), int(low) + 14) if (m - pitch_class) % 12 == 0]
        midi = float(rng.choice(candidates)) if candidates else low
        f0[start:stop] = _midi_to_hz(midi)
        length = stop - start
        ramp = min(length // 2, int(0.03 * sr))
        envelope = np.ones(length)
        envelope[:ramp] = np.linspace(0, 1, ramp)
        envelope[length - ramp :] = np.linspace(1, 0, ramp)
        amp[start:stop] = envelope * rng.uniform(0.7, 1.0)
        # Vowel changes from note to note move the formants a little.
        note_formants[start:stop] = song_formants * np.exp(rng.normal(0, 0.03 + 0.07 * difficulty, size=4))
    voiced = f0 > 0
    f0 = np.where(voiced, f0, np.interp(np.arange(n), np.flatnonzero(voiced), f0[voiced]) if voiced.any() else 200.0)
    time = np.arange(n) / sr
    vibrato = (
        singer["vibrato_depth"]
        * (1 + 0.3 * rng.standard_normal())
        * np.sin(2 * np.pi * singer["vibrato_rate"] * time + rng.uniform(0, 2 * np.pi))
    )
    f0 = f0 * 2.0 ** (vibrato / 12.0)
    phase = np.mod(2 * np.pi * np.cumsum(f0) / sr, 2 * np.pi).astype(np.float32)  # wrapped: exact in float32
    top = min(7500.0, sr / 2 - 400)
    num_harmonics = min(40, int(top / f0.min()))
    # Envelope at frame rate (10 ms), linearly interpolated to samples: the formants move slowly.
    hop = int(0.01 * sr)
    num_frames = n // hop + 2
    frames = np.minimum(np.arange(num_frames) * hop, n - 1)
    harmonic_freqs = f0[frames][None, :] * np.arange(1, num_harmonics + 1)[:, None]  # (harmonics, frames)
    frame_amps = _formant_envelope(harmonic_freqs, singer, note_formants[frames][None, :, :])
    frame_amps[harmonic_freqs > top] = 0.0
    frame_amps = frame_amps.astype(np.float32)  # float32 from here: half the memory traffic
    w = (np.arange(hop) / hop).astype(np.float32)  # (hop,)
    voice = np.zeros(n, dtype=np.float32)
    block = 50  # frames per block: keeps the (harmonics, samples) amplitude table small
    for f_start in range(0, num_frames - 1, block):
        f_stop = min(num_frames - 1, f_start + block)
        a0, a1 = frame_amps[:, f_start:f_stop, None], frame_amps[:, f_start + 1 : f_stop + 1, None]
        block_amps = (a0 * (1 - w) + a1 * w).reshape(num_harmonics, -1)  # (harmonics, block samples)
        s0 = f_start * hop
        s1 = min(n, s0 + block_amps.shape[1])
        if s1 > s0:
            voice[s0:s1] = _harmonic_sum(phase[s0:s1], block_amps[:, : s1 - s0])
    voice = voice.astype(np.float64) * amp
    breath = rng.standard_normal(n) * amp * singer["breathiness"] * np.abs(voice).mean() * 4
    return voice + breath


def _render_instrument(name, notes, n, sr, rng) -> np.ndarray:
    """notes: list of (start_s, duration_s, midi). Additive synthesis with per-instrument timbre."""
    out = np.zeros(n)
    spec = {
        "bass": (6, lambda h: 1.0 / h, 3.0),
        "pad": (8, lambda h: 1.0 / h**2, 0.3),
        "pluck": (10, lambda h: 1.0 / h, 6.0),
        "organ": (9, lambda h: (h % 2) / h, 0.0),
        "brass": (12, lambda h: 1.0 / np.sqrt(h), 1.0),
    }[name]
    num_harmonics, weight, decay = spec
    for start_s, duration_s, midi in notes:
        start = int(start_s * sr)
        length = min(n - start, int(duration_s * sr))
        if length < 16:
            continue
        f = float(_midi_to_hz(midi))
        t = np.arange(length) / sr
        harmonics = np.array([weight(h) if h * f < sr / 2 - 400 else 0.0 for h in range(1, num_harmonics + 1)])
        tone = _harmonic_sum(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi), harmonics)
        envelope = np.exp(-decay * t)
        attack = min(length, int((0.08 if name == "pad" else 0.005) * sr))
        envelope[:attack] *= np.linspace(0, 1, attack)
        release = min(length, int(0.02 * sr))
        envelope[length - release :] *= np.linspace(1, 0, release)
        out[start : start + length] += tone * envelope
    return out


def _render_accompaniment(config, album, chords, rng, n, sr) -> np.ndarray:
    beat = 60.0 / album["tempo"]
    bar = 4 * beat
    key = album["key_midi"]
    parts = []
    for name in album["instruments"]:
        notes = []
        for b, chord in enumerate(chords):
            t0 = b * bar
            if name == "bass":
                notes += [(t0 + i * beat, beat, 36 + key + chord[0] + (7 if i == 2 else 0)) for i in range(4)]
            elif name in ("pad", "organ"):
                notes += [(t0, bar, 48 + key + c) for c in chord]
            elif name == "pluck":
                notes += [(t0 + i * beat / 2, beat / 2, 60 + key + chord[i % 3] + 12 * (i // 3 % 2)) for i in range(8)]
            elif name == "brass":
                notes += [(t0 + i * 2 * beat, 1.5 * beat, 55 + key + c) for i in range(2) for c in chord[:2]]
        part = _render_instrument(name, notes, n, sr, rng)
        parts.append(part / (np.abs(part).max() + 1e-9))
    drums = np.zeros(n)
    kick, snare, hat = DRUM_PATTERNS[album["drums"]]
    step = bar / 16
    kick_len, snare_len, hat_len = int(0.15 * sr), int(0.12 * sr), int(0.03 * sr)
    tk = np.arange(kick_len) / sr
    kick_wave = np.sin(2 * np.pi * (50 * tk + 60 * (1 - np.exp(-30 * tk)) / 30)) * np.exp(-25 * tk)
    snare_env = np.exp(-30 * np.arange(snare_len) / sr)
    hat_env = np.exp(-120 * np.arange(hat_len) / sr)
    for b in range(len(chords)):
        for i in range(16):
            start = int((b * bar + i * step) * sr)
            for pattern, length, make in (
                (kick, kick_len, lambda L: kick_wave[:L]),
                (snare, snare_len, lambda L: np.diff(rng.standard_normal(L + 1)) * 0.3 * snare_env[:L]),
                (
                    hat,
                    hat_len,
                    lambda L: np.diff(rng.standard_normal(L + 2), 2) * 0.08 * hat_env[:L] if L > 2 else np.zeros(L),
                ),
            ):
                if pattern[i] == "1" and start < n:
                    L = min(length, n - start)
                    drums[start : start + L] += make(L)
    if np.abs(drums).max() > 0:
        parts.append(drums / np.abs(drums).max())
    else:
        parts.append(drums)
    return sum(g * p for g, p in zip(album["mix"], parts))


def render_song(config: SyntheticMusicConfig, k: int, a: int, s: int) -> np.ndarray:
    """The clean mix of song s of album a of singer k, float32 in [-0.5, 0.5] (6 dB headroom)."""
    sr = config.sampling_rate
    n = int(round(config.song_seconds * sr))
    singer = _draw_singer(config, k)
    album = _draw_album(config, singer, k, a)
    rng = _rng(config.seed, 3, k, a, s)
    bar = 4 * 60.0 / album["tempo"]
    chords = _chord_progression(rng, album["minor"], int(math.ceil(n / sr / bar)) + 1)
    voice = _render_voice(config, singer, album, chords, rng, n, sr)
    accompaniment = _render_accompaniment(config, album, chords, rng, n, sr)
    rms = lambda x: float(np.sqrt(np.mean(x**2)) + 1e-12)
    vocal_db = 3.0 - 9.0 * config.difficulty + rng.normal(0, 1.5)  # voice level over the accompaniment
    mix = voice / rms(voice) * 10 ** (vocal_db / 20) + accompaniment / rms(accompaniment)
    return (0.5 * mix / np.abs(mix).max()).astype(np.float32)


def band_noise(num_samples: int, sampling_rate: int, band_hz: Tuple[float, float], rms: float, rng) -> np.ndarray:
    """White noise with all its energy in `band_hz` (FFT mask), scaled to the given RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.fft.rfftfreq(num_samples, 1.0 / sampling_rate)
    spectrum[(freqs < band_hz[0]) | (freqs > band_hz[1])] = 0.0
    noise = np.fft.irfft(spectrum, n=num_samples)
    return noise * (rms / (np.sqrt(np.mean(noise**2)) + 1e-12))


def add_band_noise(
    waveform: np.ndarray, sampling_rate: int, band_hz: Tuple[float, float], noise_db: float, rng
) -> np.ndarray:
    """`waveform` plus white noise band-limited to `band_hz`, its RMS `noise_db` dB relative to the waveform's RMS
    (paper Fig. 1's shortcut noise). The one definition of that noise: the synthetic benchmark, the bias probe and
    the shortcut protocol on real data all call it."""
    low, high = float(band_hz[0]), float(band_hz[1])
    if not 0 < low < high <= sampling_rate / 2:
        raise ValueError(
            f"`band_hz` must satisfy 0 < low < high <= sampling_rate / 2 = {sampling_rate / 2:g}, got {tuple(band_hz)}."
        )
    rms = float(np.sqrt(np.mean(waveform.astype(np.float64) ** 2)))
    noise = band_noise(len(waveform), sampling_rate, (low, high), rms * 10 ** (noise_db / 20), rng)
    return (waveform + noise).astype(np.float32)


def burst_gate(num_samples: int, sampling_rate: int, fraction: float, burst_seconds: float, rng) -> np.ndarray:
    """A 0/1 envelope `(num_samples,)` that is 1 on `fraction` of the time, in bursts of `burst_seconds` at random
    places (10 ms linear ramps at the edges, so the bursts add no clicks)."""
    burst = max(1, int(round(burst_seconds * sampling_rate)))
    slots = max(1, num_samples // burst)
    chosen = rng.choice(slots, size=max(1, int(round(fraction * slots))), replace=False)
    gate = np.zeros(num_samples, dtype=np.float64)
    for slot in chosen:
        gate[slot * burst : (slot + 1) * burst] = 1.0
    ramp = max(1, sampling_rate // 100)
    kernel = np.ones(ramp) / ramp
    return np.convolve(gate, kernel, mode="same")


def add_bias_noise(clean: np.ndarray, config: SyntheticMusicConfig, song_index: int) -> np.ndarray:
    """The clean song plus its band noise (its own random stream, keyed by the song's index): everywhere, or in
    bursts (`config.bias_mode`), at `bias_noise_db` relative to the song's RMS where the noise is on."""
    rng = _rng(config.seed, 4, song_index)
    noisy = add_band_noise(clean, config.sampling_rate, config.bias_band_hz, config.bias_noise_db, rng)
    if config.bias_mode == "everywhere":
        return noisy
    gate = burst_gate(len(clean), config.sampling_rate, config.bias_burst_fraction, config.bias_burst_seconds, rng)
    return (clean + gate * (noisy - clean)).astype(np.float32)


def _write_wav_atomic(path: Path, audio: np.ndarray, sampling_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.wav")
    os.close(fd)
    try:
        sf.write(tmp, audio, sampling_rate, subtype="FLOAT", format="WAV")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run_render_jobs(render, jobs: list, num_workers: int) -> None:
    """`render(job)` for every job, on `num_workers` threads when there are several. Threads, not processes: numpy
    releases the GIL in the heavy array loops, and a process pool would re-import the caller's __main__ (spawn) or
    fork a process running threads."""
    if num_workers > 1 and len(jobs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(num_workers, len(jobs))) as pool:
            list(pool.map(render, jobs))
    else:
        for job in jobs:
            render(job)


def _assign_splits(config: SyntheticMusicConfig) -> Dict[Tuple[int, int, int], str]:
    """Split of every (singer, album, song): whole albums ("album") or songs across albums ("song")."""
    assignment = {}
    for k in range(config.num_classes):
        rng = _rng(config.seed, 5, k)
        if config.split == "album":
            order = rng.permutation(config.albums_per_class)
            for rank, a in enumerate(order):
                split = "test" if rank == 0 else "validation" if rank == 1 else "train"
                for s in range(config.songs_per_album):
                    assignment[(k, int(a), s)] = split
        else:
            keys = [(k, a, s) for a in range(config.albums_per_class) for s in range(config.songs_per_album)]
            order = rng.permutation(len(keys))
            n_test = max(1, round(len(keys) / config.albums_per_class)) if config.albums_per_class >= 3 else 1
            n_val = n_test
            for rank, i in enumerate(order):
                assignment[keys[i]] = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
    return assignment


def default_cache_root() -> Path:
    return Path(os.environ.get("GENREMERT_CACHE", Path.home() / ".cache" / "genremert")) / "synthetic"


def generate_synthetic_music(
    config: SyntheticMusicConfig, cache_dir: Optional[str] = None, num_workers: int = 1
) -> SyntheticMusic:
    """Render (or reuse) every song of `config` as wav files under `cache_dir/<hash of parameters>`.

    Clean songs live in `<root>/clean/`, noisy copies in `<root>/noise_<hash of band and level>/`;
    only the noisy copies that are used are written (biased training songs, test songs). A file
    already present is reused: a second call with the same parameters renders nothing.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    root = root / config.clean_key()
    assignment = _assign_splits(config)
    jobs = []
    result = SyntheticMusic(config=config, root=str(root))
    for index, (k, a, s) in enumerate(sorted(assignment)):
        song_id = f"singer_{k}/album_{a}/song_{s}"
        split = assignment[(k, a, s)]
        clean_path = root / "clean" / f"{song_id}.wav"
        noisy_path = root / f"noise_{config.noise_key()}" / f"{song_id}.wav"
        result.songs.append(SyntheticSong(song_id, k, f"singer_{k}/album_{a}", split, str(clean_path), str(noisy_path)))
        needs_noise = split == "test" or (split == "train" and config.bias_class == k)
        if not clean_path.exists() or (needs_noise and not noisy_path.exists()):
            jobs.append((config, k, a, s, index, str(clean_path), str(noisy_path) if needs_noise else None))
    if jobs:
        run_render_jobs(_render_job, jobs, num_workers)
        fd, tmp = tempfile.mkstemp(dir=root, suffix=".tmp.json")
        with os.fdopen(fd, "w") as f:
            json.dump({"config": dataclasses.asdict(config), "version": GENERATOR_VERSION}, f, indent=1, sort_keys=True)
        os.replace(tmp, root / "parameters.json")
    return result


def _render_job(job) -> None:
    config, k, a, s, index, clean_path, noisy_path = job
    clean_path = Path(clean_path)
    if clean_path.exists():
        clean, _ = sf.read(clean_path, dtype="float32")
    else:
        clean = render_song(config, k, a, s)
        _write_wav_atomic(clean_path, clean, config.sampling_rate)
    if noisy_path is not None and not Path(noisy_path).exists():
        _write_wav_atomic(Path(noisy_path), add_bias_noise(clean, config, index), config.sampling_rate)
