"""The audio member of the ground-truth attention family (``attention_benchmark`` is the frame-level one): the synthetic
singers of ``synthetic_music`` with the voice and a bias instrument on known frames, and every song's frame roles
written beside its audio, so that where a model's attention over time sits can be scored on real audio models.

What is rendered, per song (the singer, the album and the chords are ``synthetic_music``'s draws for that song; the
voice and the accompaniment are rendered by its functions from the song's random stream, but with no rests, so they are
not sample-identical to the plain song):

- the song is cut into segments of ``segment_seconds``; a share ``voice_fraction`` of them is **voiced**: the singer
  (the class) sings there without rests, and is silent everywhere else;
- a share ``bias_fraction`` of the *other* segments carries a **bias instrument**: a timbre of its own
  (``BIAS_INSTRUMENTS``, none of them an accompaniment instrument) arpeggiating the song's chords;
- the album's accompaniment (its two instruments and drums) plays everywhere.

Voice and instrument sit on disjoint segments (no overlap by construction), with 10 ms ramps *inside* each run of
segments, so every role frame has exactly one role (``AUDIO_FRAME_ROLES``, the ids of ``attention_benchmark``): 1 =
discriminative (the voice sounds in it, and nowhere else), 2 = spurious (the bias instrument sounds in it, and nowhere
else), 0 = other (accompaniment only; also the tail after the last whole segment). The roles are written at
``ROLE_FRAME_RATE`` (100 frames/s, frame ``f`` = samples ``[ceil(f·sr/100), ceil((f+1)·sr/100))``) as an int8 ``.npy``
per song; the dataset's ``frame_roles`` column holds its path.

The bias: each instrument is shared by ``classes_per_instrument`` singers (pairs by default: singers {0, 1} ↔
instrument 0, {2, 3} ↔ instrument 1, ...). In train, validation and ``in_distribution`` a song's instrument is its
singers' one with probability ``rho``, else another group's (uniformly); ``decorrelated``: uniform over the
instruments, independent of the singer; ``anti_correlated``: always another group's. The test songs are the test
albums of ``synthetic_music``'s split rendered once per condition: the conditions of a song differ by exactly the
instrument, on its frames (the song's gain is set without it).

:func:`load_attention_audio` returns the song table; :func:`slice_frame_roles` reads the roles of any slice and
:func:`pool_role_fractions` maps them to a model's attention frames (``genremert.evaluation.attention_audio_mass``
scores an attention against them).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import soundfile as sf
from datasets import Dataset, DatasetDict, Value

from . import synthetic_music
from .songs import song_features


ATTENTION_AUDIO_VERSION = 1  # bump when the rendering changes, so old caches are not reused
AUDIO_FRAME_ROLES = ("other", "discriminative", "spurious")  # role ids 0, 1, 2 in the .npy files
ROLE_FRAME_RATE = 100  # role frames per second
TEST_CONDITIONS = ("in_distribution", "decorrelated", "anti_correlated")
SPLITS = ("train", "validation", *TEST_CONDITIONS)
# How each split draws its instrument: train, validation and in_distribution share the rule (and the files' folder).
CONDITIONS = ("correlated", "decorrelated", "anti_correlated")
CONDITION_OF_SPLIT = {"train": "correlated", "validation": "correlated", **dict(zip(TEST_CONDITIONS, CONDITIONS))}
# name: (partial frequency ratios, partial gains, decay per second, MIDI note of the lowest arpeggio pitch)
BIAS_INSTRUMENTS = {
    "bell": ((1.0, 2.76, 5.40, 8.93), (1.0, 0.6, 0.35, 0.2), 5.0, 79),
    "clarinet": ((1.0, 3.0, 5.0, 7.0, 9.0), (1.0, 0.45, 0.25, 0.15, 0.1), 0.5, 67),
    "marimba": ((1.0, 3.93, 9.54), (1.0, 0.35, 0.12), 9.0, 72),
    "sawtooth": (tuple(float(h) for h in range(1, 11)), tuple(1.0 / h for h in range(1, 11)), 1.5, 74),
}
RAMP_SECONDS = 0.01


@dataclass(frozen=True)
class AttentionAudioOptions:
    """The option of the synthetic generator that puts the voice and a bias instrument on known frames (see the
    module docstring); its files live in their own folder, keyed by :meth:`key`."""

    voice_fraction: float = 0.4  # share of the segments where the singer sings
    bias_fraction: float = 0.3  # share of the segments where the bias instrument plays (never where the voice is)
    segment_seconds: float = 0.5  # a whole number of role frames
    rho: float = 0.9  # P(instrument of the singer's group) in train, validation and in_distribution
    classes_per_instrument: int = 2  # singers sharing one instrument (2: pairs)
    bias_instrument_db: float = 0.0  # instrument RMS where it plays, relative to the accompaniment's RMS

    def __post_init__(self):
        if not 0.0 < self.voice_fraction < 1.0 or not 0.0 < self.bias_fraction < 1.0:
            raise ValueError(
                f"voice_fraction and bias_fraction must be in (0, 1), got voice_fraction={self.voice_fraction}, "
                f"bias_fraction={self.bias_fraction}"
            )
        if self.voice_fraction + self.bias_fraction > 1.0:
            raise ValueError(
                f"voice_fraction + bias_fraction must be <= 1 (voice and instrument never overlap), got "
                f"{self.voice_fraction} + {self.bias_fraction} = {self.voice_fraction + self.bias_fraction}"
            )
        frames = self.segment_seconds * ROLE_FRAME_RATE
        if self.segment_seconds <= 0 or abs(frames - round(frames)) > 1e-6:
            raise ValueError(
                f"segment_seconds must be a positive multiple of 1/{ROLE_FRAME_RATE} s, got {self.segment_seconds}"
            )
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"rho must be in [0, 1], got {self.rho}")
        if self.classes_per_instrument < 1:
            raise ValueError(f"classes_per_instrument must be >= 1, got {self.classes_per_instrument}")

    @classmethod
    def from_dict(cls, values: Dict) -> AttentionAudioOptions:
        """The options from a JSON object (``--synthetic_options '{"attention_audio": {...}}'``); names unknown keys."""
        if not isinstance(values, dict):
            raise ValueError(f"attention_audio must be a dict of options, got {type(values).__name__}: {values!r}")
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"attention_audio: unknown option(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @property
    def segment_frames(self) -> int:
        return int(round(self.segment_seconds * ROLE_FRAME_RATE))

    def key(self) -> str:
        fields = {**dataclasses.asdict(self), "version": ATTENTION_AUDIO_VERSION}
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]

    def check_config(self, config: synthetic_music.SyntheticMusicConfig) -> None:
        """Refuses a dataset whose classes do not split into instrument groups, or whose songs hold too few segments."""
        num_classes, group = config.num_classes, self.classes_per_instrument
        if num_classes % group != 0 or not 2 <= num_classes // group <= len(BIAS_INSTRUMENTS):
            raise ValueError(
                f"num_classes ({num_classes}) must be a multiple of classes_per_instrument ({group}) giving 2 to "
                f"{len(BIAS_INSTRUMENTS)} instrument groups (one per instrument of BIAS_INSTRUMENTS)"
            )
        if num_segments(config, self) < 2:
            raise ValueError(
                f"song_seconds ({config.song_seconds}) holds fewer than 2 segments of segment_seconds "
                f"({self.segment_seconds}): there is no room for both the voice and the instrument"
            )


def num_segments(config: synthetic_music.SyntheticMusicConfig, options: AttentionAudioOptions) -> int:
    num_samples = int(round(config.song_seconds * config.sampling_rate))
    return (num_samples * ROLE_FRAME_RATE // config.sampling_rate) // options.segment_frames


def num_instruments(config: synthetic_music.SyntheticMusicConfig, options: AttentionAudioOptions) -> int:
    return config.num_classes // options.classes_per_instrument


def draw_bias_instruments(
    labels: np.ndarray, condition: str, rho: float, classes_per_instrument: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """The instrument id of each song `(songs,)` under `condition` (one of `CONDITIONS`), for `labels (songs,)` and
    `count` instruments: the singers' group's one with probability `rho` ("correlated"), uniform ("decorrelated"), or
    another group's, uniformly ("anti_correlated")."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    groups = np.asarray(labels) // classes_per_instrument  # (songs,) the agreeing instrument
    others = (groups + rng.integers(1, count, size=len(groups))) % count  # (songs,) never agreeing
    if condition == "decorrelated":
        return rng.integers(0, count, size=len(groups))
    if condition == "anti_correlated":
        return others
    return np.where(rng.random(len(groups)) < rho, groups, others)


# --------------------------------------------------------------------------------------------- #
# Rendering
# --------------------------------------------------------------------------------------------- #


def _frame_of_samples(num_samples: int, sampling_rate: int) -> np.ndarray:
    """`(samples,)` the role frame of every sample: frame f holds samples [ceil(f·sr/100), ceil((f+1)·sr/100))."""
    return np.arange(num_samples, dtype=np.int64) * ROLE_FRAME_RATE // sampling_rate


def song_layout(
    config: synthetic_music.SyntheticMusicConfig, options: AttentionAudioOptions, song_index: int
) -> np.ndarray:
    """The roles `(frames,)` int8 of song `song_index`: voiced and instrument segments at random places (its own random
    stream, the same in every condition), other frames 0."""
    num_samples = int(round(config.song_seconds * config.sampling_rate))
    num_frames = -(-num_samples * ROLE_FRAME_RATE // config.sampling_rate)  # the last frame may be partial
    segments = num_segments(config, options)
    order = synthetic_music._rng(config.seed, 8, song_index).permutation(segments)
    voiced = min(segments - 1, max(1, int(round(options.voice_fraction * segments))))  # room left for the instrument
    biased = max(1, min(segments - voiced, int(round(options.bias_fraction * segments))))
    roles = np.zeros(num_frames, dtype=np.int8)
    for segment_ids, role in ((order[:voiced], 1), (order[voiced : voiced + biased], 2)):
        for segment in segment_ids:
            roles[segment * options.segment_frames : (segment + 1) * options.segment_frames] = role
    return roles


def role_gate(sample_mask: np.ndarray, ramp: int) -> np.ndarray:
    """`(samples,)` 1 on `sample_mask`, 0 elsewhere, with linear ramps of `ramp` samples inside each run (never zero
    inside a run, exactly zero outside)."""
    gate = sample_mask.astype(np.float64)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], sample_mask.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        length = min(ramp, (stop - start) // 2)
        if length > 0:
            rise = np.arange(1, length + 1) / (length + 1)
            gate[start : start + length] = rise
            gate[stop - length : stop] = rise[::-1]
    return gate


def render_bias_instrument(name: str, album: Dict, chords: List[List[int]], n: int, sr: int, rng) -> np.ndarray:
    """`(samples,)` the instrument `name` arpeggiating the chords in eighth notes over the whole song (gated later)."""
    ratios, gains, decay, lowest = BIAS_INSTRUMENTS[name]
    beat = 60.0 / album["tempo"]
    out = np.zeros(n)
    for bar_index, chord in enumerate(chords):
        for step in range(8):
            start = int((bar_index * 4 * beat + step * beat / 2) * sr)
            length = min(n - start, int(beat / 2 * sr))
            if length < 16:
                continue
            frequency = float(synthetic_music._midi_to_hz(lowest + (album["key_midi"] + chord[step % 3]) % 12))
            time = np.arange(length) / sr
            tone = np.zeros(length)
            for ratio, gain in zip(ratios, gains):
                if ratio * frequency < sr / 2 - 400:  # the fundamental always is (lowest + 11 < 2 kHz < 3.6 kHz)
                    tone += gain * np.sin(2 * np.pi * ratio * frequency * time + rng.uniform(0, 2 * np.pi))
            envelope = np.exp(-decay * time)
            attack, release = min(length, int(0.005 * sr)), min(length, int(0.01 * sr))
            envelope[:attack] *= np.linspace(0, 1, attack)
            envelope[length - release :] *= np.linspace(1, 0, release)
            out[start : start + length] += tone * envelope
    return out


@dataclass
class AttentionAudioRender:
    """The parts of one song, each scaled as it is mixed: `voice`, `accompaniment` and, per instrument id, the
    `instruments` part `(samples,)`; `roles (frames,)` int8."""

    voice: np.ndarray
    accompaniment: np.ndarray
    instruments: Dict[int, np.ndarray]
    roles: np.ndarray

    def mix(self, instrument: int) -> np.ndarray:
        return (self.voice + self.accompaniment + self.instruments[instrument]).astype(np.float32)


def render_attention_song(
    config: synthetic_music.SyntheticMusicConfig,
    options: AttentionAudioOptions,
    k: int,
    a: int,
    s: int,
    song_index: int,
    instruments: Sequence[int],
) -> AttentionAudioRender:
    """Song s of album a of singer k (index `song_index` in the sorted song list), with each of `instruments`. The
    gain puts the peak of voice + accompaniment at 0.5; the instrument adds to it (float wav: nothing clips)."""
    sr = config.sampling_rate
    n = int(round(config.song_seconds * sr))
    singer = synthetic_music._draw_singer(config, k)
    album = synthetic_music._draw_album(config, singer, k, a)
    rng = synthetic_music._rng(config.seed, 3, k, a, s)  # the draws of `render_song`, in its order
    bar = 4 * 60.0 / album["tempo"]
    chords = synthetic_music._chord_progression(rng, album["minor"], int(math.ceil(n / sr / bar)) + 1)
    voice = synthetic_music._render_voice(config, singer, album, chords, rng, n, sr, rest_probability=0.0)
    accompaniment = synthetic_music._render_accompaniment(config, album, chords, rng, n, sr)
    vocal_db = 3.0 - 9.0 * config.difficulty + rng.normal(0, 1.5)
    roles = song_layout(config, options, song_index)
    sample_roles = roles[_frame_of_samples(n, sr)]  # (samples,)
    ramp = int(RAMP_SECONDS * sr)
    voice = voice * role_gate(sample_roles == 1, ramp)
    bias_gate = role_gate(sample_roles == 2, ramp)

    def rms_where(signal: np.ndarray, mask: np.ndarray) -> float:
        return float(np.sqrt(np.mean(signal[mask] ** 2)) + 1e-12)

    voice = voice / rms_where(voice, sample_roles == 1) * 10 ** (vocal_db / 20)
    accompaniment = accompaniment / rms_where(accompaniment, np.ones(n, dtype=bool))
    gain = 0.5 / np.abs(voice + accompaniment).max()  # without the instrument: the conditions differ by it alone
    parts = {}
    for instrument in instruments:
        name = list(BIAS_INSTRUMENTS)[instrument]
        part = bias_gate * render_bias_instrument(
            name, album, chords, n, sr, synthetic_music._rng(config.seed, 9, song_index, instrument)
        )
        parts[instrument] = gain * part / rms_where(part, sample_roles == 2) * 10 ** (options.bias_instrument_db / 20)
    return AttentionAudioRender(gain * voice, gain * accompaniment, parts, roles)


# --------------------------------------------------------------------------------------------- #
# Generation into the cache, and the song table
# --------------------------------------------------------------------------------------------- #


@dataclass
class AttentionAudioSong:
    """One song: its split (``train`` / ``validation`` / ``test``), its instrument and wav per condition it is
    rendered in, and its roles file."""

    song_id: str
    label: int
    album: str
    split: str
    index: int
    roles_path: str
    instruments: Dict[str, int] = field(default_factory=dict)  # condition → instrument id
    paths: Dict[str, str] = field(default_factory=dict)  # condition → wav path


def attention_audio_root(
    config: synthetic_music.SyntheticMusicConfig, options: AttentionAudioOptions, cache_dir=None
) -> Path:
    """`<cache>/<clean key of the config>/attention_<key of the options>`: beside the plain songs, never mixed in."""
    root = Path(cache_dir) if cache_dir is not None else synthetic_music.default_cache_root()
    return root / config.clean_key() / f"attention_{options.key()}"


def generate_attention_audio(
    config: synthetic_music.SyntheticMusicConfig,
    options: AttentionAudioOptions,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    num_workers: int = 1,
) -> List[AttentionAudioSong]:
    """Render (or reuse) every song of `config` with `options`: train and validation songs in the correlated
    condition, test songs in all three; a file already present is reused."""
    options.check_config(config)
    root = attention_audio_root(config, options, cache_dir)
    assignment = synthetic_music._assign_splits(config)
    keys = sorted(assignment)
    labels = np.array([k for k, _, _ in keys])
    count = num_instruments(config, options)
    drawn = {
        condition: draw_bias_instruments(
            labels,
            condition,
            options.rho,
            options.classes_per_instrument,
            count,
            synthetic_music._rng(config.seed, 7, index),
        )
        for index, condition in enumerate(CONDITIONS)
    }
    songs, jobs = [], []
    for index, (k, a, s) in enumerate(keys):
        song_id = f"singer_{k}/album_{a}/song_{s}"
        split = assignment[(k, a, s)]
        roles_path = str(root / "roles" / f"{song_id}.npy")
        song = AttentionAudioSong(song_id, k, f"singer_{k}/album_{a}", split, index, roles_path)
        for condition in CONDITIONS if split == "test" else ("correlated",):
            song.instruments[condition] = int(drawn[condition][index])
            song.paths[condition] = str(root / condition / f"{song_id}.wav")
        songs.append(song)
        missing = [c for c in song.paths if not Path(song.paths[c]).exists()]
        if missing or not Path(song.roles_path).exists():
            jobs.append((config, options, k, a, s, song, missing))
    if jobs:
        synthetic_music.run_render_jobs(_render_job, jobs, num_workers)
        parameters = {"config": dataclasses.asdict(config), "attention_audio": dataclasses.asdict(options)}
        _write_atomic(root / "parameters.json", lambda handle: handle.write(json.dumps(parameters, indent=1).encode()))
    return songs


def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _render_job(job) -> None:
    config, options, k, a, s, song, missing = job
    wanted = sorted({song.instruments[condition] for condition in missing})
    render = render_attention_song(config, options, k, a, s, song.index, wanted)
    for condition in missing:
        mix = render.mix(song.instruments[condition])
        write = functools.partial(sf.write, data=mix, samplerate=config.sampling_rate, subtype="FLOAT", format="WAV")
        _write_atomic(Path(song.paths[condition]), write)
    if not Path(song.roles_path).exists():
        _write_atomic(Path(song.roles_path), functools.partial(np.save, arr=render.roles))


def attention_audio_splits(
    config: synthetic_music.SyntheticMusicConfig,
    options: AttentionAudioOptions,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    num_workers: int = 1,
) -> DatasetDict:
    """The song table of `config` with `options` (see :func:`load_attention_audio`)."""
    songs = generate_attention_audio(config, options, cache_dir, num_workers)
    root = attention_audio_root(config, options, cache_dir)
    metadata = synthetic_music.SyntheticMusic(config=config, root=str(root)).metadata()
    metadata["attention_audio"] = {
        **dataclasses.asdict(options),
        "frame_roles": list(AUDIO_FRAME_ROLES),
        "role_frame_rate": ROLE_FRAME_RATE,
        "bias_instruments": list(BIAS_INSTRUMENTS)[: num_instruments(config, options)],
    }
    extra = {"frame_roles": Value("string"), "bias_instrument": Value("string"), "bias_agrees": Value("bool")}
    features = song_features(config.class_names, True, extra)
    names = list(BIAS_INSTRUMENTS)
    result = DatasetDict()
    for name in SPLITS:
        source = "test" if name in TEST_CONDITIONS else name
        condition = CONDITION_OF_SPLIT[name]
        rows = sorted((song for song in songs if song.split == source), key=lambda song: song.song_id)
        columns = {
            "audio": [song.paths[condition] for song in rows],
            "label": [song.label for song in rows],
            "song_id": [song.song_id for song in rows],
            "album": [song.album for song in rows],
            "frame_roles": [song.roles_path for song in rows],
            "bias_instrument": [names[song.instruments[condition]] for song in rows],
            "bias_agrees": [
                song.instruments[condition] == song.label // options.classes_per_instrument for song in rows
            ],
        }
        dataset = Dataset.from_dict(columns, features=features)
        dataset.info.description = json.dumps({"genremert_synthetic": metadata})
        result[name] = dataset
    return result


def load_attention_audio(
    num_classes: int = 4,
    albums_per_class: int = 4,
    songs_per_album: int = 4,
    song_seconds: float = 20.0,
    sampling_rate: int = 16000,
    difficulty: float = 0.5,
    seed: int = 0,
    split: str = "album",
    accompaniment_correlation: float = 1.0 / len(synthetic_music.INSTRUMENT_POOL),
    voice_fraction: float = AttentionAudioOptions.voice_fraction,
    bias_fraction: float = AttentionAudioOptions.bias_fraction,
    segment_seconds: float = AttentionAudioOptions.segment_seconds,
    rho: float = AttentionAudioOptions.rho,
    classes_per_instrument: int = AttentionAudioOptions.classes_per_instrument,
    bias_instrument_db: float = AttentionAudioOptions.bias_instrument_db,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    num_workers: Optional[int] = None,
) -> DatasetDict:
    """The singers with the voice and a bias instrument on known frames (module docstring), generated once into
    `cache_dir` and reused: ``train``, ``validation``, ``in_distribution``, ``decorrelated``, ``anti_correlated`` (the
    test songs in the three conditions). Columns: ``audio``, ``label``, ``song_id``, ``album`` (as ``load_synthetic``),
    ``frame_roles`` (path of the song's int8 roles ``.npy`` at 100 frames/s), ``bias_instrument`` (its name) and
    ``bias_agrees`` (it is the singer's group's). `accompaniment_correlation` defaults to chance (1/5): the album's
    instruments then tell nothing of the singer, and the bias instrument is the only shortcut.
    ``load_synthetic(attention_audio={...})`` is the same generator under run_classification's split names (with
    ``load_synthetic``'s own defaults: pass ``accompaniment_correlation=0.2`` there for these songs)."""
    config = synthetic_music.SyntheticMusicConfig(
        num_classes=num_classes,
        albums_per_class=albums_per_class,
        songs_per_album=songs_per_album,
        song_seconds=song_seconds,
        sampling_rate=sampling_rate,
        difficulty=difficulty,
        seed=seed,
        split=split,
        accompaniment_correlation=accompaniment_correlation,
        # The band noise is not used here; the default band is kept where the rate allows it (only the check reads it).
        bias_band_hz=(3000.0, 5000.0) if sampling_rate >= 10000 else (sampling_rate / 8, sampling_rate / 4),
    )
    options = AttentionAudioOptions(
        voice_fraction=voice_fraction,
        bias_fraction=bias_fraction,
        segment_seconds=segment_seconds,
        rho=rho,
        classes_per_instrument=classes_per_instrument,
        bias_instrument_db=bias_instrument_db,
    )
    workers = num_workers if num_workers is not None else min(2, os.cpu_count() or 1)
    return attention_audio_splits(config, options, cache_dir, workers)


# --------------------------------------------------------------------------------------------- #
# Roles of slices and of attention frames
# --------------------------------------------------------------------------------------------- #


def slice_frame_roles(songs: Dataset, slices: Dataset, sampling_rate: int, slice_seconds: float) -> np.ndarray:
    """`(slices, role frames)` int8: the roles of every slice of `slices` (a ``slice_songs`` table of `songs`, whose
    ``frame_roles`` column names each song's roles file), at `sampling_rate` (the slicing's), for slices of
    `slice_seconds`. Frames past a song's end (a zero-padded slice) are 0 (other)."""
    if "frame_roles" not in songs.column_names:
        raise ValueError(f"songs has no 'frame_roles' column (columns: {songs.column_names}): no roles to read")
    table = slices.with_format(None)
    length = int(round(slice_seconds * ROLE_FRAME_RATE))
    role_paths = songs["frame_roles"]
    song_roles: Dict[int, np.ndarray] = {}
    result = np.zeros((len(table), length), dtype=np.int8)
    for row, (song_index, start) in enumerate(zip(table["song_index"], table["start"])):
        if song_index not in song_roles:
            song_roles[song_index] = np.load(role_paths[song_index])
        roles = song_roles[song_index]
        first = int(round(start * ROLE_FRAME_RATE / sampling_rate))
        segment = roles[first : first + length]
        result[row, : len(segment)] = segment
    return result


def pool_role_fractions(
    frame_roles: np.ndarray, num_attention_frames: int, frames_per_attention_frame: Optional[float] = None
) -> np.ndarray:
    """`(n, attention frames, roles)` the share of each role in each attention frame of `frame_roles (n, frames)`.

    Attention frame j covers role frames `[j·p, (j+1)·p)` (clipped to the slice), `p = frames_per_attention_frame`, or
    `frames / num_attention_frames` (the attention frames split the slice evenly: average pooling, with fractional
    edges) when None. A role frame cut by an edge counts by the part inside. An attention frame wholly past the slice
    gets no role (zeros)."""
    frame_roles = np.asarray(frame_roles)
    if frame_roles.ndim != 2:
        raise ValueError(f"frame_roles must be (n, frames), got shape {frame_roles.shape}")
    if num_attention_frames < 1:
        raise ValueError(f"num_attention_frames must be >= 1, got {num_attention_frames}")
    length = frame_roles.shape[1]
    step = length / num_attention_frames if frames_per_attention_frame is None else float(frames_per_attention_frame)
    if step <= 0:
        raise ValueError(f"frames_per_attention_frame must be > 0, got {frames_per_attention_frame}")
    starts = np.arange(num_attention_frames)[:, None] * step  # (attention frames, 1)
    frames = np.arange(length)[None, :]  # (1, frames)
    overlap = np.clip(np.minimum(starts + step, frames + 1) - np.maximum(starts, frames), 0.0, None)  # (T, frames)
    totals = overlap.sum(axis=1, keepdims=True)
    weights = np.divide(overlap, totals, out=np.zeros_like(overlap), where=totals > 0)
    indicators = np.eye(len(AUDIO_FRAME_ROLES))[frame_roles]  # (n, frames, roles)
    return np.einsum("tf,nfr->ntr", weights, indicators)  # (n, attention frames, roles)
