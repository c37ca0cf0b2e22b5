"""The audio ground-truth attention benchmark (genremert.data.attention_audio): the exported frame roles match the
rendering, the instrument pairing and its reassignment per split, role pooling to attention frames, the fractional
attention mass (on real tiny CRNN_FGNL and tagger forward passes), and run_classification reporting the masses."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from genremert.data import attention_audio, synthetic_music
from genremert.data.attention_audio import (
    AttentionAudioOptions,
    draw_bias_instruments,
    load_attention_audio,
    pool_role_fractions,
    render_attention_song,
    slice_frame_roles,
)
from genremert.data.audio_files import slice_songs
from genremert.data.synthetic import load_synthetic
from genremert.evaluation.attention_audio_mass import (
    attention_frame_seconds,
    audio_attention_masses,
    collect_time_attentions,
    fractional_attention_mass,
    time_attention,
    time_attention_reason,
)


# 4 singers (2 pairs), 1 train / 1 validation / 1 test album each, one 2-second song per album.
TINY = {"num_classes": 4, "albums_per_class": 3, "songs_per_album": 1, "song_seconds": 2.0}
TINY_CRNN = "n_fft=512,hop_length=256,num_mel_bins=32,conv_channels=[4,8,8,8],fgnl_reduction=2,mose_hidden_size=4,gru_hidden_size=8"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("attention_audio_cache")


@pytest.fixture(scope="module")
def songs(cache_dir):
    """The tiny set at 16 kHz with rho = 1: every train / validation / in_distribution instrument is the pair's."""
    return load_attention_audio(**TINY, sampling_rate=16000, rho=1.0, cache_dir=cache_dir, num_workers=1)


def frame_rms(signal: np.ndarray, num_frames: int, sampling_rate: int) -> np.ndarray:
    """`(frames,)` RMS of `signal` per role frame, from the frames' sample bounds written out."""
    bounds = [math.ceil(f * sampling_rate / 100) for f in range(num_frames + 1)]
    return np.array([np.sqrt(np.mean(signal[bounds[f] : bounds[f + 1]] ** 2)) for f in range(num_frames)])


def test_exported_roles_match_the_rendering(cache_dir):
    shape = {"voice_fraction": 0.4, "bias_fraction": 0.4, "segment_seconds": 0.25}
    splits = load_attention_audio(**TINY, sampling_rate=8000, **shape, cache_dir=cache_dir, num_workers=1)
    names = list(attention_audio.BIAS_INSTRUMENTS)
    # A test song whose in_distribution and anti_correlated instruments differ.
    pairs = zip(splits["in_distribution"], splits["anti_correlated"])
    row, anti = next((a, b) for a, b in pairs if a["bias_instrument"] != b["bias_instrument"])
    k, a, s = (int(part.split("_")[1]) for part in row["song_id"].split("/"))
    index = [(k, a, s) for k in range(4) for a in range(3) for s in range(1)].index((k, a, s))
    config = synthetic_music.SyntheticMusicConfig(
        **TINY, sampling_rate=8000, accompaniment_correlation=0.2, bias_band_hz=(1000, 2000)
    )
    render = render_attention_song(config, AttentionAudioOptions(**shape), k, a, s, index, instruments=[0, 1])
    roles = render.roles
    assert roles.shape == (200,)
    # 8 segments of 25 frames: round(0.4 · 8) = 3 voiced, 3 with the instrument, the other 2 neither.
    assert np.bincount(roles, minlength=3).tolist() == [50, 75, 75]
    voice = frame_rms(render.voice, 200, 8000)
    assert (voice[roles != 1] == 0).all(), "the voice sounds outside its frames"
    assert (voice[roles == 1] > 1e-2 * np.median(voice[roles == 1])).all(), "a voiced frame is (almost) silent"
    for instrument in (0, 1):
        part = frame_rms(render.instruments[instrument], 200, 8000)
        assert (part[roles != 2] == 0).all(), "the instrument sounds outside its frames"
        assert (part[roles == 2] > 1e-2 * np.median(part[roles == 2])).all()
    assert frame_rms(render.accompaniment, 200, 8000).min() > 0  # the accompaniment plays everywhere

    # The written files are that rendering: the wav is the mix with the song's instrument, the .npy its roles.
    assert np.array_equal(np.load(row["frame_roles"]), roles)
    written, rate = sf.read(row["audio"], dtype="float32")
    assert rate == 8000 and np.array_equal(written, render.mix(names.index(row["bias_instrument"])))
    # The test conditions of a song differ by exactly the instrument, on its frames.
    difference = frame_rms(sf.read(anti["audio"], dtype="float32")[0] - written, 200, 8000)
    assert (difference[roles != 2] == 0).all() and (difference[roles == 2] > 0).all()


def test_pairing_and_its_reassignment_rates():
    labels = np.arange(8000) % 4  # singers {0, 1} ↔ instrument 0, {2, 3} ↔ instrument 1
    pair = labels // 2
    correlated = draw_bias_instruments(labels, "correlated", 0.8, 2, 2, np.random.default_rng(0))
    assert abs((correlated == pair).mean() - 0.8) < 0.02
    for singer in range(4):
        assert abs((correlated[labels == singer] == singer // 2).mean() - 0.8) < 0.04
    decorrelated = draw_bias_instruments(labels, "decorrelated", 0.8, 2, 2, np.random.default_rng(1))
    for singer in range(4):  # independent of the singer: each instrument half of the time for every singer
        assert abs((decorrelated[labels == singer] == 0).mean() - 0.5) < 0.04
    anti = draw_bias_instruments(labels, "anti_correlated", 0.8, 2, 2, np.random.default_rng(2))
    assert (anti == 1 - pair).all()
    # Three pairs: a non-agreeing draw is one of the two other pairs' instruments, uniformly.
    labels = np.arange(9000) % 6
    anti = draw_bias_instruments(labels, "anti_correlated", 0.8, 2, 3, np.random.default_rng(3))
    assert (anti != labels // 2).all()
    assert abs((anti[labels // 2 == 0] == 1).mean() - 0.5) < 0.04
    with pytest.raises(ValueError, match="condition must be one of"):
        draw_bias_instruments(labels, "shuffled", 0.8, 2, 3, np.random.default_rng(0))


def test_loaded_splits_follow_the_pairing(songs, cache_dir):
    names = list(attention_audio.BIAS_INSTRUMENTS)
    for split in ("train", "validation", "in_distribution"):  # rho = 1
        table = songs[split]
        assert [names.index(i) for i in table["bias_instrument"]] == [label // 2 for label in table["label"]]
        assert all(table["bias_agrees"])
    anti = songs["anti_correlated"]
    assert [names.index(i) for i in anti["bias_instrument"]] == [1 - label // 2 for label in anti["label"]]
    assert not any(anti["bias_agrees"])
    decorrelated = songs["decorrelated"]
    assert decorrelated["bias_agrees"] == [
        names.index(i) == label // 2 for i, label in zip(decorrelated["bias_instrument"], decorrelated["label"])
    ]
    # The three test conditions are the same songs (one roles file each); no album in two splits.
    tests = [songs[name] for name in attention_audio.TEST_CONDITIONS]
    assert tests[0]["song_id"] == tests[1]["song_id"] == tests[2]["song_id"]
    assert tests[0]["frame_roles"] == tests[2]["frame_roles"] and tests[0]["audio"] != tests[2]["audio"]
    albums = [set(songs[name]["album"]) for name in ("train", "validation", "in_distribution")]
    assert not (albums[0] & albums[1] or albums[0] & albums[2] or albums[1] & albums[2])
    # rho = 0: no train song has its pair's instrument.
    never = load_attention_audio(**TINY, sampling_rate=8000, rho=0.0, cache_dir=cache_dir, num_workers=1)
    assert not any(never["train"]["bias_agrees"]) and not any(never["validation"]["bias_agrees"])
    metadata = json.loads(never["train"].info.description)["genremert_synthetic"]
    assert metadata["bias_class"] is None and metadata["attention_audio"]["rho"] == 0.0


def test_the_option_is_off_by_default_and_leaves_the_plain_songs_alone(cache_dir):
    plain_options = {**TINY, "sampling_rate": 8000, "bias_band_hz": (1000.0, 2000.0), "cache_dir": cache_dir}
    plain = load_synthetic(**plain_options, num_workers=1)
    assert "frame_roles" not in plain["train"].column_names and set(plain) == {
        "train",
        "validation",
        "test",
        "test_noisy",
    }
    files = sorted({*plain["train"]["audio"], *plain["test"]["audio"], *plain["test_noisy"]["audio"]})
    before = {path: open(path, "rb").read() for path in files}
    with_roles = load_synthetic(**plain_options, num_workers=1, attention_audio={"rho": 0.5})
    assert set(with_roles) == {
        "train",
        "validation",
        "test_in_distribution",
        "test_decorrelated",
        "test_anti_correlated",
    }
    assert "frame_roles" in with_roles["test_decorrelated"].column_names
    root = synthetic_music.SyntheticMusicConfig(**TINY, sampling_rate=8000, bias_band_hz=(1000, 2000)).clean_key()
    assert all(f"/{root}/attention_" in path for path in with_roles["train"]["audio"])
    assert all(f"/{root}/clean/" in path or f"/{root}/noise_" in path for path in files)
    assert load_synthetic(**plain_options, num_workers=1)["train"]["audio"] == plain["train"]["audio"]
    assert {path: open(path, "rb").read() for path in files} == before
    with pytest.raises(ValueError, match="bias_class=1"):
        load_synthetic(**plain_options, bias_class=1, attention_audio={})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['voice_share'\]"):
        load_synthetic(**plain_options, attention_audio={"voice_share": 0.5})
    with pytest.raises(ValueError, match="voice_fraction \\+ bias_fraction must be <= 1"):
        AttentionAudioOptions(voice_fraction=0.6, bias_fraction=0.5)
    with pytest.raises(ValueError, match="num_classes \\(5\\) must be a multiple"):
        load_attention_audio(**{**TINY, "num_classes": 5}, sampling_rate=8000, cache_dir=cache_dir)


def test_pooling_roles_to_attention_frames():
    roles = np.array([[0, 0, 1, 1, 1, 2, 2, 0]])
    np.testing.assert_allclose(pool_role_fractions(roles, 4)[0], [[1, 0, 0], [0, 1, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]])
    # 3 frames of 8/3 role frames: the role frames cut by an edge count by the part inside.
    np.testing.assert_allclose(
        pool_role_fractions(roles, 3)[0], [[0.75, 0.25, 0], [0, 0.875, 0.125], [0.375, 0, 0.625]]
    )
    # A given step (3 role frames): the last frame is clipped to the slice, a frame wholly past it gets no role.
    np.testing.assert_allclose(
        pool_role_fractions(roles, 4, frames_per_attention_frame=3)[0],
        [[2 / 3, 1 / 3, 0], [0, 2 / 3, 1 / 3], [0.5, 0, 0.5], [0, 0, 0]],
    )
    with pytest.raises(ValueError, match="frame_roles must be \\(n, frames\\)"):
        pool_role_fractions(roles[0], 4)


def test_fractional_attention_mass():
    fractions = pool_role_fractions(np.array([[0, 0, 1, 1, 1, 2, 2, 0]] * 2), 4)
    attention = np.array([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    masses = fractional_attention_mass(attention, fractions)
    assert masses == pytest.approx({"other": 0.375, "discriminative": 0.375, "spurious": 0.25})
    with pytest.raises(ValueError, match="attention \\(2, 3\\) must be"):
        fractional_attention_mass(attention[:, :3], fractions)


def test_slice_frame_roles_reads_any_slice(tmp_path):
    from datasets import Dataset

    long_roles, short_roles = (np.arange(250) % 3).astype(np.int8), np.full(60, 2, dtype=np.int8)
    rows = {"audio": [], "label": [0, 1], "song_id": ["long", "short"], "frame_roles": []}
    for name, roles in (("long", long_roles), ("short", short_roles)):
        sf.write(tmp_path / f"{name}.wav", np.zeros(len(roles) * 80, dtype=np.float32), 8000)  # 100 frames/s at 8 kHz
        np.save(tmp_path / f"{name}.npy", roles)
        rows["audio"].append(str(tmp_path / f"{name}.wav"))
        rows["frame_roles"].append(str(tmp_path / f"{name}.npy"))
    songs = Dataset.from_dict(rows)
    # Sliced at 16 kHz (another rate than the files'): 1 s slices every 0.75 s; the short song is one padded slice.
    slices = slice_songs(songs, 16000, 1.0, 0.25)
    assert slices.with_format(None)["start"] == [0, 12000, 24000, 0]
    result = slice_frame_roles(songs, slices, 16000, 1.0)
    assert result.shape == (4, 100)
    for row, first in enumerate((0, 75, 150)):
        assert np.array_equal(result[row], long_roles[first : first + 100])
    assert np.array_equal(result[3], np.concatenate([short_roles, np.zeros(40, dtype=np.int8)]))
    with pytest.raises(ValueError, match="no 'frame_roles' column"):
        slice_frame_roles(songs.remove_columns("frame_roles"), slices, 16000, 1.0)


def naive_masses(attention: np.ndarray, slice_roles: np.ndarray, frame_seconds: float) -> dict:
    """The mass by its definition, one attention frame and one role frame at a time (seconds, not matrices)."""
    totals = np.zeros(3)
    slice_seconds = slice_roles.shape[1] / 100
    for weights, roles in zip(attention, slice_roles):
        for j, weight in enumerate(weights):
            begin, end = j * frame_seconds, min((j + 1) * frame_seconds, slice_seconds)
            shares = np.zeros(3)
            for f, role in enumerate(roles):
                shares[role] += max(0.0, min(end, (f + 1) / 100) - max(begin, f / 100))
            if shares.sum() > 0:
                totals += weight * shares / shares.sum()
    return dict(zip(("other", "discriminative", "spurious"), totals / len(attention)))


def test_mass_of_a_real_crnn_fgnl_time_attention(songs):
    from tiny_configs import tiny_crnn_fgnl_config

    from genremert.training.trainer import SliceCollator
    from modeling_crnn_fgnl import CRNNFGNLForAudioClassification
    from modeling_lca_genremert import build_feature_extractor

    torch.manual_seed(0)
    config = tiny_crnn_fgnl_config(num_labels=4, counterfactual="learned", counterfactual_attention="time")
    model = CRNNFGNLForAudioClassification(config)
    slices = slice_songs(songs["decorrelated"], 16000, 1.0)
    slice_roles = slice_frame_roles(songs["decorrelated"], slices, 16000, 1.0)
    collator = SliceCollator(build_feature_extractor(config), {s: i for i, s in enumerate(slices["song_id"])})
    device = torch.device("cpu")
    masses = audio_attention_masses(model, slices, slice_roles, collator, 3, device)
    main, counterfactual = collect_time_attentions(model, slices, collator, 3, device)
    assert main.shape == counterfactual.shape == (8, 7)  # 63 mel frames → 3 poolings → 7 frames of 0.128 s
    seconds = attention_frame_seconds(config)
    assert seconds == pytest.approx(0.128) and abs(main.shape[1] * seconds - 1.0) <= seconds
    for prefix, attention in (("main", main), ("cf", counterfactual)):
        expected = naive_masses(attention, slice_roles, seconds)
        assert {role: masses[f"{prefix}_mass_{role}"] for role in expected} == pytest.approx(expected, abs=1e-6)
        assert sum(masses[f"{prefix}_mass_{role}"] for role in expected) == pytest.approx(1.0, abs=1e-5)
    # MoSE's attention is over channel rolls: nothing to score.
    mose = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config(num_labels=4))
    assert "rolls" in time_attention_reason(mose.config)
    assert audio_attention_masses(mose, slices, slice_roles, collator, 3, device) == {}


def test_tagger_attention_over_time(songs):
    from tiny_configs import tiny_self_attention_tagger_config

    from genremert.training.trainer import SliceCollator
    from modeling_lca_genremert import build_feature_extractor
    from modeling_self_attention_tagger import SelfAttentionTaggerForAudioClassification

    # Heads averaged, the class token dropped, the rest renormalised.
    attention = torch.tensor([[[0.2, 0.4, 0.4], [0.6, 0.2, 0.2]]])  # (batch 1, heads 2, tokens 3)
    config = tiny_self_attention_tagger_config(num_labels=4, counterfactual="learned")
    np.testing.assert_allclose(time_attention(config, attention).numpy(), [[0.5, 0.5]])
    attention = torch.tensor([[[0.5, 0.5, 0.0], [0.5, 0.3, 0.2]]])
    np.testing.assert_allclose(time_attention(config, attention).numpy(), [[0.8, 0.2]], rtol=1e-6)

    torch.manual_seed(0)
    model = SelfAttentionTaggerForAudioClassification(config)
    slices = slice_songs(songs["train"], 16000, 1.0)
    slice_roles = slice_frame_roles(songs["train"], slices, 16000, 1.0)
    collator = SliceCollator(build_feature_extractor(config), {s: i for i, s in enumerate(slices["song_id"])})
    main, counterfactual = collect_time_attentions(model, slices, collator, 4, torch.device("cpu"))
    seconds = attention_frame_seconds(config)  # 256 · 4 / 16000
    assert main.shape == counterfactual.shape == (8, 16) and seconds == pytest.approx(0.064)
    np.testing.assert_allclose(main.sum(axis=1), 1.0, rtol=1e-5)
    masses = audio_attention_masses(model, slices, slice_roles, collator, 4, torch.device("cpu"))
    expected = naive_masses(main, slice_roles, seconds)
    assert {role: masses[f"main_mass_{role}"] for role in expected} == pytest.approx(expected, abs=1e-6)


def test_run_classification_reports_the_attention_mass(songs, cache_dir, tmp_path):
    from genremert.training import run as training_run
    from modeling_crnn_fgnl import CRNNFGNLForAudioClassification

    options = {**TINY, "accompaniment_correlation": 0.2, "attention_audio": {"rho": 1.0}}  # the `songs` fixture's files
    output_dir = tmp_path / "out"
    flags = ["--model_type", "crnn_fgnl", "--dataset", "synthetic", "--data_dir", str(cache_dir)]
    flags += ["--synthetic_options", json.dumps(options), "--slice_seconds", "1.0"]
    flags += ["--config_overrides", TINY_CRNN + ",counterfactual_attention=time", "--counterfactual", "learned"]
    flags += ["--cf_warmup_epochs", "0", "--num_train_epochs", "1", "--per_device_train_batch_size", "4"]
    flags += ["--per_device_eval_batch_size", "4", "--save_strategy", "no", "--report_to", "none"]
    flags += ["--disable_tqdm", "true", "--output_dir", str(output_dir), "--do_train", "--do_eval", "--do_predict"]
    results = training_run.main(flags)
    roles = ("other", "discriminative", "spurious")
    splits = ("eval", "test_in_distribution", "test_decorrelated", "test_anti_correlated")
    for split in splits:
        for prefix in ("main", "cf"):
            values = [results[f"{split}_{prefix}_mass_{role}"] for role in roles]
            assert min(values) >= 0 and sum(values) == pytest.approx(1.0, abs=1e-5), (split, prefix, values)
    # The figures are those of the saved model on that split's slices and roles (the wiring: split, rate, length).
    model = CRNNFGNLForAudioClassification.from_pretrained(output_dir)
    slices = slice_songs(songs["anti_correlated"], 16000, 1.0)
    slice_roles = slice_frame_roles(songs["anti_correlated"], slices, 16000, 1.0)
    from genremert.training.trainer import SliceCollator
    from modeling_lca_genremert import build_feature_extractor

    collator = SliceCollator(build_feature_extractor(model.config), {s: i for i, s in enumerate(slices["song_id"])})
    masses = audio_attention_masses(model, slices, slice_roles, collator, 4, torch.device("cpu"))
    for key, value in masses.items():
        assert results[f"test_anti_correlated_{key}"] == pytest.approx(value, abs=1e-5), key
    saved = json.loads((output_dir / "test_anti_correlated_results.json").read_text())
    assert saved["test_anti_correlated_main_mass_spurious"] == results["test_anti_correlated_main_mass_spurious"]
