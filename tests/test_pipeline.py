"""The song-level audio-classification pipeline, loaded the way users load it: from a saved model folder with
`pipeline("audio-classification", model=folder, trust_remote_code=True)`, on both tiny models, with no torchaudio."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
import transformers.dynamic_module_utils as dynamic_module_utils
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config
from transformers import AudioClassificationPipeline, pipeline

from audio_genremert import (
    SLICE_REMAINDERS,
    aggregate_songs,
    cut_slices,
    decode_audio,
    decoded_num_samples,
    resample,
    slice_starts,
    song_ranking,
    stream_audio,
    stream_slices,
)
from genremert import CRNNFGNLForAudioClassification, GenreMERTForAudioClassification, build_feature_extractor
from pipeline_genremert import SongLevelAudioClassificationPipeline


MODELS = {
    "genremert": (GenreMERTForAudioClassification, tiny_genremert_config),
    "crnn_fgnl": (CRNNFGNLForAudioClassification, tiny_crnn_fgnl_config),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Both tiny models saved with `save_pretrained`, and their pipelines loaded back from the folders alone."""
    root = tmp_path_factory.mktemp("pipeline")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention on a shared 2-core machine
    with pytest.MonkeyPatch.context() as patch:
        # Remote code is copied into a private modules cache, never into the user's ~/.cache.
        patch.setenv("HF_MODULES_CACHE", str(root / "modules"))
        patch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(root / "modules"))
        result = {}
        for name, (model_class, make_config) in MODELS.items():
            torch.manual_seed(0)
            model = model_class(make_config(id2label={0: "blues", 1: "jazz", 2: "rock"}))
            folder = root / name
            model.save_pretrained(folder)
            classifier = pipeline("audio-classification", model=str(folder), trust_remote_code=True)
            result[name] = {"folder": folder, "pipe": classifier, "model": model}
        yield result
    torch.set_num_threads(threads)


@pytest.fixture(params=list(MODELS))
def setup(request, saved):
    return saved[request.param]


def noise(seconds: float, sampling_rate: int, seed: int = 0, channels: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (
        (int(round(seconds * sampling_rate)),) if channels is None else (int(round(seconds * sampling_rate)), channels)
    )
    return rng.uniform(-0.5, 0.5, shape).astype(np.float32)


def as_dict(result) -> dict:
    return {entry["label"]: entry["score"] for entry in result}


def assert_same_answer(result, expected, atol=1e-6):
    assert [entry["label"] for entry in result] == [entry["label"] for entry in expected]
    np.testing.assert_allclose([e["score"] for e in result], [e["score"] for e in expected], atol=atol, rtol=0)


def slice_probabilities(model, feature_extractor, slices: list[np.ndarray]) -> torch.Tensor:
    """The model's softmax probabilities `(slices, labels)`, each slice through the feature extractor on its own."""
    features = [
        feature_extractor(s, sampling_rate=feature_extractor.sampling_rate, return_tensors="pt") for s in slices
    ]
    input_values = torch.cat([f["input_values"] for f in features])  # (slices, samples)
    with torch.no_grad():
        return model.eval()(input_values=input_values).logits.softmax(-1)


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------


def test_folder_carries_preprocessor_and_pipeline_code(setup):
    folder, classifier = setup["folder"], setup["pipe"]
    assert (folder / "preprocessor_config.json").is_file()
    assert (folder / "pipeline_genremert.py").is_file()
    # The class came from the folder's remote code, not from this checkout.
    assert type(classifier).__name__ == "SongLevelAudioClassificationPipeline"
    assert type(classifier).__module__.startswith("transformers_modules.")
    assert classifier.feature_extractor.sampling_rate == setup["model"].config.sampling_rate


def test_folder_alone_works_in_a_fresh_process(saved, tmp_path):
    """What a Hub user does: a fresh interpreter, outside this checkout, with only the folder."""
    script = f"""
import sys
import numpy as np
from transformers import pipeline
classifier = pipeline("audio-classification", model={str(saved["crnn_fgnl"]["folder"])!r}, trust_remote_code=True)
audio = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * 22050).astype(np.float32)
result = classifier({{"array": audio, "sampling_rate": 22050}}, top_k=None)
assert sorted(entry["label"] for entry in result) == ["blues", "jazz", "rock"], result
assert abs(sum(entry["score"] for entry in result) - 1) < 1e-5, result
assert "pipeline_genremert" not in sys.modules and "torchaudio" not in sys.modules
print(type(classifier).__module__)
"""
    environment = {
        **os.environ,
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "PYTHONPATH": "",
        "OMP_NUM_THREADS": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().startswith("transformers_modules.")


def test_in_memory_model_needs_pipeline_class(setup):
    model, classifier = setup["model"], setup["pipe"]
    in_memory = pipeline(
        "audio-classification",
        model=model,
        feature_extractor=build_feature_extractor(model.config),
        pipeline_class=SongLevelAudioClassificationPipeline,
    )
    audio = noise(2.5, model.config.sampling_rate)
    assert_same_answer(in_memory(audio), classifier(audio))
    # Without `pipeline_class` a model object gets the stock pipeline (documented in docs/inference.md).
    stock = pipeline("audio-classification", model=model, feature_extractor=build_feature_extractor(model.config))
    assert type(stock) is AudioClassificationPipeline


# ---------------------------------------------------------------------------------------------------------------------
# The three input kinds
# ---------------------------------------------------------------------------------------------------------------------


def test_array_shorter_than_a_slice_is_zero_padded_to_one_slice(setup):
    classifier, model = setup["pipe"], setup["model"]
    rate = model.config.sampling_rate
    audio = noise(0.6, rate)  # shorter than the 1 s training slice: zero-padded to one slice, as in evaluation
    padded = np.pad(audio, (0, rate - len(audio)))
    expected = slice_probabilities(model, classifier.feature_extractor, [padded])[0]
    for aggregation in ("mean", "vote"):  # one slice: its probabilities, whatever the aggregation
        result = classifier(audio, top_k=None, aggregation=aggregation)
        scores = as_dict(result)
        np.testing.assert_allclose(
            [scores[model.config.id2label[i]] for i in range(3)], expected.numpy(), atol=1e-6, rtol=0
        )
        assert [e["score"] for e in result] == sorted((e["score"] for e in result), reverse=True)
    # A torch tensor is the same input as the numpy array.
    assert_same_answer(classifier(torch.from_numpy(audio)), classifier(audio))


def test_dict_at_another_rate_is_resampled(setup):
    classifier, rate = setup["pipe"], setup["model"].config.sampling_rate
    audio_44k = noise(2.2, 44100, seed=1)
    resampled = resample(audio_44k, 44100, rate)  # soxr, the resampler of the training data
    for key in ("array", "raw"):
        result = classifier({key: audio_44k, "sampling_rate": 44100, "path": None})
        assert_same_answer(result, classifier(resampled))
    # The dict at the model's own rate is the plain array.
    audio = noise(1.5, rate, seed=2)
    assert_same_answer(classifier({"array": audio, "sampling_rate": rate}), classifier(audio))


def test_a_bare_array_whose_length_suggests_another_rate_warns(setup):
    import warnings

    classifier, rate = setup["pipe"], setup["model"].config.sampling_rate
    other = 44100 if rate != 44100 else 48000
    with pytest.warns(UserWarning, match=rf'3 s at {other} Hz.*"sampling_rate": {other}'):
        classifier(noise(3.0, other, seed=4))
    with warnings.catch_warnings():  # the model's own rate, or a dict with its rate: no warning
        warnings.simplefilter("error")
        classifier(noise(3.0, rate, seed=5))
        classifier({"array": noise(3.0, other, seed=4), "sampling_rate": other})


def test_wav_and_mp3_paths_and_bytes(setup, tmp_path):
    classifier, rate = setup["pipe"], setup["model"].config.sampling_rate
    audio = noise(2.5, rate, seed=3)
    for suffix in ("wav", "mp3"):
        path = tmp_path / f"song.{suffix}"
        soundfile.write(path, audio, rate)
        decoded, file_rate = soundfile.read(path, dtype="float32")
        expected = classifier({"array": decoded, "sampling_rate": file_rate})
        assert_same_answer(classifier(str(path)), expected)
        assert_same_answer(classifier(path), expected)  # pathlib.Path
        assert_same_answer(classifier(path.read_bytes()), expected)
        # Undecoded 🤗 Datasets audio cells (`Audio(decode=False)`).
        assert_same_answer(classifier({"bytes": path.read_bytes(), "path": "elsewhere.wav"}), expected)
        assert_same_answer(classifier({"bytes": None, "path": str(path)}), expected)


def test_stereo_file_at_another_rate_is_mixed_down_and_resampled(setup, tmp_path):
    classifier = setup["pipe"]
    stereo = noise(3.5, 44100, seed=4, channels=2)  # (samples, channels)
    path = tmp_path / "stereo_44k.wav"
    soundfile.write(path, stereo, 44100, subtype="FLOAT")
    result = classifier(str(path), return_slices=True, slice_remainder="end")
    # The slices cover exactly the 3.5 s of the file (right rate after resampling).
    assert result["slices"][-1]["end"] == pytest.approx(3.5, abs=1e-4)
    expected = classifier({"array": stereo.mean(axis=1), "sampling_rate": 44100}, slice_remainder="end")
    assert_same_answer(result["scores"], expected)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")
def test_formats_soundfile_cannot_read_are_decoded_with_ffmpeg(saved, tmp_path):
    classifier = saved["crnn_fgnl"]["pipe"]
    wav = tmp_path / "song.wav"
    soundfile.write(wav, noise(3.0, 22050, seed=5), 22050)
    m4a = tmp_path / "song.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), str(m4a)], check=True)
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.read(m4a)
    result = classifier(str(m4a), return_slices=True, slice_remainder="end")
    assert result["slices"][-1]["end"] == pytest.approx(3.0, abs=0.05)  # AAC priming may add a few ms
    assert sum(e["score"] for e in result["scores"]) == pytest.approx(1.0, abs=1e-5)


def test_stereo_arrays_int_pcm_and_top_k(saved):
    classifier = saved["crnn_fgnl"]["pipe"]
    mono = noise(1.5, 16000, seed=6)
    stereo = np.stack([mono, -0.5 * mono])  # (channels, samples)
    expected = classifier(stereo.mean(axis=0))
    assert_same_answer(classifier(stereo), expected)
    assert_same_answer(classifier(stereo.T), expected)  # (samples, channels)
    pcm16 = np.round(mono * 32767).astype(np.int16)
    assert_same_answer(classifier(pcm16), classifier(pcm16.astype(np.float32) / 32768))
    assert len(classifier(mono)) == 3  # default top_k=5, clamped to the 3 labels
    assert len(classifier(mono, top_k=1)) == 1
    assert len(classifier(mono, top_k=None)) == 3


# ---------------------------------------------------------------------------------------------------------------------
# Song level
# ---------------------------------------------------------------------------------------------------------------------


def test_long_recording_gets_the_song_level_answer(setup):
    classifier, model = setup["pipe"], setup["model"]
    rate = model.config.sampling_rate  # slice_seconds = 1.0 in the tiny configs
    audio = noise(3.5, rate, seed=7)
    # No overlap, the remainder covered by a last slice aligned to the end: 0-1, 1-2, 2-3, 2.5-3.5 s.
    starts = [0, rate, 2 * rate, int(2.5 * rate)]
    probabilities = slice_probabilities(model, classifier.feature_extractor, [audio[s : s + rate] for s in starts])
    labels = [model.config.id2label[i] for i in range(3)]

    mean = classifier(audio, top_k=None, aggregation="mean", slice_remainder="end")
    expected_mean = probabilities.mean(0).numpy()
    np.testing.assert_allclose([as_dict(mean)[label] for label in labels], expected_mean, atol=1e-6, rtol=0)
    assert [e["label"] for e in mean] == [labels[i] for i in np.argsort(-expected_mean, kind="stable")]

    vote = classifier(audio, top_k=None, aggregation="vote", slice_batch_size=3, slice_remainder="end")
    votes = np.bincount(probabilities.argmax(-1).numpy(), minlength=3) / 4
    np.testing.assert_allclose([as_dict(vote)[label] for label in labels], votes, atol=0, rtol=0)
    expected_order = sorted(range(3), key=lambda i: (-votes[i], -expected_mean[i]))  # ties by mean probability
    assert [e["label"] for e in vote] == [labels[i] for i in expected_order]

    # With a vote threshold, only the confident slices vote.
    top = probabilities.max(-1).values.numpy()
    threshold = float(np.sort(top)[1])  # the two least confident slices do not vote
    thresholded = classifier(audio, top_k=None, aggregation="vote", vote_threshold=threshold, slice_remainder="end")
    voters = probabilities[torch.from_numpy(top > threshold)]
    expected_votes = np.bincount(voters.argmax(-1).numpy(), minlength=3) / len(voters)
    np.testing.assert_allclose([as_dict(thresholded)[label] for label in labels], expected_votes, atol=0, rtol=0)

    # The config's song rule is the default: a plain vote of the slices without the remainder (0-1, 1-2, 2-3 s).
    assert model.config.song_aggregation == "vote" and model.config.slice_remainder == "drop"
    default_votes = np.bincount(probabilities[:3].argmax(-1).numpy(), minlength=3) / 3
    np.testing.assert_allclose([as_dict(classifier(audio, top_k=None))[label] for label in labels], default_votes)
    # A vote threshold saved in the config is applied by default.
    model.config.vote_threshold = threshold
    try:
        assert_same_answer(classifier(audio, top_k=None, slice_remainder="end"), thresholded)
    finally:
        model.config.vote_threshold = None


def test_return_slices_overlap_and_remainder(saved):
    classifier = saved["crnn_fgnl"]["pipe"]
    audio = noise(3.5, 16000, seed=8)
    result = classifier(audio, return_slices=True, aggregation="mean", slice_remainder="end")
    assert result["aggregation"] == "mean"
    assert [(s["start"], s["end"]) for s in result["slices"]] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (2.5, 3.5)]
    slice_means = np.mean(
        [[as_dict(s["scores"])[label] for label in ("blues", "jazz", "rock")] for s in result["slices"]], 0
    )
    np.testing.assert_allclose(
        [as_dict(result["scores"])[label] for label in ("blues", "jazz", "rock")], slice_means, atol=1e-6
    )
    assert_same_answer(result["scores"], classifier(audio, aggregation="mean", slice_remainder="end"))

    overlapped = classifier(audio, return_slices=True, slice_overlap_seconds=0.25, slice_remainder="end")
    assert [s["start"] for s in overlapped["slices"]] == [0.0, 0.75, 1.5, 2.25, 2.5]
    dropped = classifier(audio, return_slices=True, slice_remainder="drop")
    assert [s["end"] for s in dropped["slices"]] == [1.0, 2.0, 3.0]
    # Batching the slices differently does not change the answer.
    assert_same_answer(classifier(audio, slice_batch_size=1), classifier(audio, slice_batch_size=4), atol=1e-5)


def test_a_list_of_recordings_gives_one_answer_each(saved):
    classifier = saved["genremert"]["pipe"]
    recordings = [
        noise(2.5, 24000, seed=9),
        noise(0.5, 24000, seed=10),
        {"array": noise(1.7, 44100), "sampling_rate": 44100},
    ]
    expected = [classifier(recording) for recording in recordings]
    for batch_size in (1, 2):  # recordings are never padded together: batch_size > 1 falls back to one at a time
        results = classifier(recordings, batch_size=batch_size)
        assert len(results) == 3
        for result, single in zip(results, expected):
            assert_same_answer(result, single)


def test_slice_starts_and_aggregation_rules():
    assert slice_starts(100, 100, 100) == [0]
    assert slice_starts(60, 100, 100) == [0]  # shorter than one slice: one zero-padded slice
    assert slice_starts(60, 100, 100, short="drop") == []
    assert slice_starts(300, 100, 100) == [0, 100, 200]
    assert slice_starts(350, 100, 100) == [0, 100, 200]  # the remainder is dropped by default ...
    assert slice_starts(350, 100, 100, remainder="end") == [0, 100, 200, 250]  # ... or covered by an end slice
    assert slice_starts(350, 100, 75, remainder="end") == [0, 75, 150, 225, 250]
    # Votes 2 / 2 / 1: labels 0 and 1 tie on votes, label 1 wins on summed probability.
    scores = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    vote = aggregate_songs(scores, aggregation="vote")
    np.testing.assert_allclose(vote.scores[0], [0.4, 0.4, 0.2])
    assert song_ranking(vote) == [1, 0, 2] and vote.predictions[0] == 1
    mean = aggregate_songs(scores, aggregation="mean")
    np.testing.assert_allclose(mean.scores[0], scores.mean(0), atol=1e-12)
    assert song_ranking(mean) == [1, 0, 2]
    # Only slices whose top probability exceeds the threshold vote (slices 2, 3 and 4: 0.8, 0.7, 0.8 > 0.65) ...
    vote = aggregate_songs(scores, aggregation="vote", threshold=0.65)
    np.testing.assert_allclose(vote.scores[0], [0.0, 2 / 3, 1 / 3])
    assert song_ranking(vote) == [1, 2, 0]
    # ... and when none does, all of them vote.
    fell_back = aggregate_songs(scores, aggregation="vote", threshold=0.9)
    assert song_ranking(fell_back) == [1, 0, 2] and fell_back.fell_back[0]
    # Several songs at once, slices in any order: each song gets its own answer.
    songs = aggregate_songs(np.concatenate([scores, scores[::-1]]), np.array([3] * 5 + [1] * 5))
    assert songs.song_index.tolist() == [1, 3] and songs.predictions.tolist() == [1, 1]


# ---------------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------------


def test_too_short_audio_names_the_minimum(setup):
    classifier, model = setup["pipe"], setup["model"]
    minimum = model.minimum_input_length
    assert len(classifier(noise(1.0, model.config.sampling_rate)[:minimum])) == 3  # the minimum itself works
    with pytest.raises(ValueError, match=rf"too short: {minimum - 1} samples.*at least {minimum} samples"):
        classifier(noise(1.0, model.config.sampling_rate)[: minimum - 1])


BAD_INPUTS = [
    ("empty", np.zeros(0, np.float32), ValueError, r"empty"),
    ("nan", np.r_[np.zeros(4000), np.nan].astype(np.float32), ValueError, r"1 NaN or infinite values.*index 4000"),
    ("inf", np.r_[np.inf, np.zeros(4000)].astype(np.float32), ValueError, r"NaN or infinite"),
    ("int64", np.zeros(4000, np.int64), TypeError, r"dtype int64.*int16/int32"),
    ("bool", np.zeros(4000, bool), TypeError, r"dtype bool"),
    ("complex", np.zeros(4000, np.complex64), TypeError, r"dtype complex64"),
    ("3-D", np.zeros((2, 2, 4000), np.float32), ValueError, r"shape \(2, 2, 4000\)"),
    ("square", np.zeros((300, 300), np.float32), ValueError, r"ambiguous"),
    ("many channels", np.zeros((16, 4000), np.float32), ValueError, r"at most 8 channels"),
    ("no rate", {"array": np.zeros(4000, np.float32)}, ValueError, r'"sampling_rate".*got keys \[\'array\'\]'),
    ("no array", {"sampling_rate": 16000}, ValueError, r'"array" or "raw"'),
    ("both keys", {"array": np.zeros(4000), "raw": np.zeros(4000), "sampling_rate": 16000}, ValueError, r"exactly one"),
    ("zero rate", {"array": np.zeros(4000, np.float32), "sampling_rate": 0}, ValueError, r"positive integer.*got 0"),
    ("negative rate", {"array": np.zeros(4000, np.float32), "sampling_rate": -8000}, ValueError, r"got -8000"),
    ("fractional rate", {"array": np.zeros(4000, np.float32), "sampling_rate": 22050.5}, ValueError, r"got 22050.5"),
    ("string rate", {"array": np.zeros(4000, np.float32), "sampling_rate": "16000"}, ValueError, r"got '16000'"),
    ("list in dict", {"array": [0.0] * 4000, "sampling_rate": 16000}, TypeError, r"numpy array or a torch tensor"),
    ("missing file", "/nonexistent/song.wav", FileNotFoundError, r"/nonexistent/song.wav"),
    ("empty bytes", b"", ValueError, r"audio bytes: empty"),
    ("unsupported type", 3.0, TypeError, r"Unsupported audio input of type float"),
]


@pytest.mark.parametrize("name, bad_input, error, message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(saved, name, bad_input, error, message):
    with pytest.raises(error, match=message):
        saved["crnn_fgnl"]["pipe"](bad_input)


def test_undecodable_file_names_the_file(saved, tmp_path):
    path = tmp_path / "not_audio.wav"
    path.write_text("this is not audio " * 100)
    with pytest.raises(ValueError, match=r"not_audio\.wav.*(cannot decode|not audio)"):
        saved["crnn_fgnl"]["pipe"](str(path))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"aggregation": "median"}, r"`aggregation` must be one of \['vote', 'mean'\], got 'median'"),
        ({"slice_overlap_seconds": 1.0}, r"`slice_overlap_seconds` must be in \[0, slice_seconds=1.0\), got 1.0"),
        ({"slice_overlap_seconds": -0.1}, r"`slice_overlap_seconds`"),
        ({"slice_remainder": "pad"}, r"`slice_remainder` must be one of"),
        ({"slice_batch_size": 0}, r"`slice_batch_size` must be a positive integer, got 0"),
        ({"vote_threshold": 1.0}, r"`vote_threshold` must be in \[0, 1\), got 1.0"),
        ({"top_k": 0}, r"`top_k` must be a positive integer or None, got 0"),
        ({"function_to_apply": "relu"}, r"`function_to_apply`"),
    ],
)
def test_bad_call_arguments(saved, kwargs, message):
    with pytest.raises(ValueError, match=message):
        saved["crnn_fgnl"]["pipe"](noise(1.0, 16000), **kwargs)


def test_unknown_call_argument_is_refused(saved):
    with pytest.raises(TypeError, match=r"Unknown argument\(s\) \['aggregate'\]"):
        saved["crnn_fgnl"]["pipe"](noise(1.0, 16000), aggregate="vote")


# ---------------------------------------------------------------------------------------------------------------------
# Files are decoded, resampled and sliced block by block
# ---------------------------------------------------------------------------------------------------------------------

LONG_SECONDS = 180.37  # 3 min and a tail: "end" adds a slice to the regular grid, with and without overlap


@pytest.fixture(scope="module")
def long_stereo_file(tmp_path_factory):
    """A generated 3-minute stereo 44.1 kHz 16-bit wav file (7.95 M frames: 122 blocks of `DECODE_BLOCK_FRAMES`)."""
    path = tmp_path_factory.mktemp("long") / "long_stereo_44k.wav"
    rng = np.random.default_rng(11)
    frames = int(round(LONG_SECONDS * 44100))
    with soundfile.SoundFile(path, "w", 44100, 2, subtype="PCM_16") as handle:
        for begin in range(0, frames, 441000):
            length = min(441000, frames - begin)
            tone = 0.3 * np.sin(2 * np.pi * 220 * (begin + np.arange(length)) / 44100)  # something besides noise
            handle.write((rng.uniform(-0.3, 0.3, (length, 2)) + tone[:, None]).astype(np.float32))
    return path


def slice_logits(result) -> tuple[list[tuple[float, float]], np.ndarray]:
    """`[(start, end)]` and the logits `(slices, labels)` in label-id order of a `return_slices=True,
    function_to_apply="none", top_k=None` answer."""
    labels = ["blues", "jazz", "rock"]
    times = [(s["start"], s["end"]) for s in result["slices"]]
    return times, np.array([[as_dict(s["scores"])[label] for label in labels] for s in result["slices"]])


def whole_file_logits(classifier, path, starts: list[int], batch_size: int = 8) -> np.ndarray:
    """The per-slice logits `(slices, labels)` of the whole-file path: `decode_audio` of the whole file, then
    `cut_slices` and the feature extractor and the model, `batch_size` slices at a time."""
    rate, slice_samples = classifier.feature_extractor.sampling_rate, classifier.slice_samples
    waveform = decode_audio(path, rate)
    logits = []
    with torch.no_grad():
        for begin in range(0, len(starts), batch_size):
            slices = cut_slices(waveform, starts[begin : begin + batch_size], slice_samples)
            features = classifier.feature_extractor(slices, sampling_rate=rate, return_tensors="pt")
            logits.append(classifier.model(**features).logits)
    return torch.cat(logits).numpy()


@pytest.mark.parametrize("remainder, overlap", [("drop", 0.0), ("end", 0.0), ("drop", 0.25), ("end", 0.25)])
def test_streamed_file_gives_the_slices_of_the_whole_file(setup, long_stereo_file, remainder, overlap):
    """The pipeline streams a file (soundfile blocks → mono → `soxr.ResampleStream` → slices as they fill up); the
    whole-file path (`decode_audio`, then `cut_slices` at `slice_starts`) must give the same slices and logits."""
    classifier, rate = setup["pipe"], setup["model"].config.sampling_rate
    kwargs = dict(slice_remainder=remainder, slice_overlap_seconds=overlap)
    streamed = classifier(str(long_stereo_file), return_slices=True, function_to_apply="none", top_k=None, **kwargs)
    num_samples = int(LONG_SECONDS * 44100) * rate // 44100
    starts = slice_starts(num_samples, rate, rate - int(round(overlap * rate)), remainder)
    assert len(starts) == (180 if overlap == 0 else 240) + (remainder == "end")
    times, logits = slice_logits(streamed)
    assert times == [(start / rate, (start + rate) / rate) for start in starts]
    # soxr's streaming resampler is bit-identical to its one-shot resampling and the slices go through the model in
    # the same batches: the logits measured equal (max difference 0.0, logits up to 0.66). The tolerance, 16 ulp of
    # 0.5, only allows for last-bit differences of other decoders (libsndfile's MP3 decoding: 1 ulp, block-dependent).
    np.testing.assert_allclose(logits, whole_file_logits(classifier, long_stereo_file, starts), atol=1e-6, rtol=0)
    # The song answer is that of the decoded waveform given as an array.
    assert_same_answer(
        classifier(str(long_stereo_file), **kwargs), classifier(decode_audio(long_stereo_file, rate), **kwargs)
    )


def test_a_file_never_gets_decoded_whole(saved, long_stereo_file, tmp_path):
    """Memory flat in the recording's length: the numpy memory (soundfile blocks, resampled samples, slices) the
    pipeline allocates for a 3-minute file is that of a 20-second one. Decoded whole, the 3-minute file alone would be
    64 MB of float32 stereo frames."""
    import tracemalloc

    classifier = saved["genremert"]["pipe"]
    short = tmp_path / "short_stereo_44k.wav"
    soundfile.write(short, noise(20.0, 44100, seed=12, channels=2), 44100, subtype="PCM_16")
    classifier(str(short))  # warm-up: lazy initialisations are not the recording's memory
    peaks = {}
    for name, path in (("short", short), ("long", long_stereo_file)):
        tracemalloc.start()
        try:
            classifier(str(path), slice_batch_size=8)
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    whole_file_bytes = int(LONG_SECONDS * 44100) * 2 * 4
    assert peaks["long"] < whole_file_bytes / 8, peaks
    assert peaks["long"] < 1.3 * peaks["short"], peaks


def test_stream_audio_gives_decode_audios_samples(tmp_path):
    stereo = noise(9.3, 44100, seed=13, channels=2)
    cases = [("wav", "FLOAT", 44100, stereo), ("flac", "PCM_24", 44100, stereo), ("mp3", None, 16000, stereo[:, 0])]
    for suffix, subtype, file_rate, audio in cases:
        path = tmp_path / f"song.{suffix}"
        soundfile.write(path, audio[: int(9.3 * file_rate)], file_rate, subtype=subtype)
        for rate in (16000, 24000):
            whole = decode_audio(path, rate)
            blocks = list(stream_audio(path, rate, block_frames=10007))  # a prime: blocks straddle everything
            assert len(blocks) > 10 and all(block.dtype == np.float32 and block.ndim == 1 for block in blocks)
            streamed = np.concatenate(blocks)
            assert streamed.shape == whole.shape == (decoded_num_samples(path, rate),)
            if suffix == "mp3":  # libsndfile's MP3 decoding differs by 1 ulp with the size of the reads
                np.testing.assert_allclose(streamed, whole, atol=1e-6, rtol=0)
            else:  # soxr's streaming resampler is bit-identical to its one-shot resampling
                np.testing.assert_array_equal(streamed, whole)
    with pytest.raises(ValueError, match=r"`block_frames` must be a positive integer, got 0"):
        next(stream_audio(path, 16000, block_frames=0))


def test_stream_slices_are_the_slices_of_the_whole_waveform():
    rng = np.random.default_rng(14)
    for trial in range(400):
        num_samples = int(rng.integers(0, 2000))
        slice_samples = int(rng.integers(1, 300))
        hop_samples = int(rng.integers(1, slice_samples + 1))
        remainder = SLICE_REMAINDERS[trial % 2]
        waveform = rng.standard_normal(num_samples).astype(np.float32)
        cuts = np.sort(rng.integers(0, num_samples + 1, int(rng.integers(0, 12))))  # empty blocks included
        streamed = list(stream_slices(iter(np.split(waveform, cuts)), slice_samples, hop_samples, remainder))
        starts = slice_starts(num_samples, slice_samples, hop_samples, remainder)
        assert [start for start, _ in streamed] == starts, (num_samples, slice_samples, hop_samples, remainder)
        expected = cut_slices(waveform, starts, slice_samples)
        for (_, segment), row in zip(streamed, expected):
            np.testing.assert_array_equal(segment, row)
    with pytest.raises(ValueError, match=r"`slice_remainder` must be one of \['drop', 'end'\], got 'pad'"):
        next(stream_slices([np.zeros(10, np.float32)], 4, 4, "pad"))


@pytest.mark.parametrize("missing_frames", [1000, 20000])
def test_streamed_file_that_ends_before_its_header(saved, tmp_path, monkeypatch, missing_frames):
    """A stream 1000 frames (23 ms) short is zero-padded with a warning, as when decoded whole; 20,000 frames short
    is damaged, and the error names the file."""
    classifier = saved["crnn_fgnl"]["pipe"]
    path = tmp_path / "short_end.wav"
    soundfile.write(path, noise(4.0, 44100, seed=15, channels=2), 44100, subtype="PCM_16")

    class ShortStream(soundfile.SoundFile):  # what libsndfile gives for some damaged streams
        def read(self, frames=-1, *args, **kwargs):
            data = super().read(frames, *args, **kwargs)
            return data[:-missing_frames] if self.tell() >= self.frames and len(data) > missing_frames else data

    monkeypatch.setattr(soundfile, "SoundFile", ShortStream)
    if missing_frames > 4096:
        with pytest.raises(ValueError, match=r"short_end\.wav.*decoded 156400 frames, the header announces 176400"):
            classifier(str(path))
        return
    with pytest.warns(UserWarning, match=r"short_end\.wav.*ends 1000 frames \(23 ms\)"):
        streamed = classifier(str(path), return_slices=True, slice_remainder="end")
    with pytest.warns(UserWarning, match="ends 1000 frames"):
        whole = classifier(decode_audio(path, 16000), return_slices=True, slice_remainder="end")
    assert streamed == whole


def test_streamed_file_keeps_the_checks_of_decoding(saved, tmp_path, caplog):
    classifier = saved["crnn_fgnl"]["pipe"]
    # A data chunk shorter than the header declares: a warning, and the answer of what is there.
    cut = tmp_path / "cut.wav"
    soundfile.write(cut, noise(6.0, 16000, seed=16), 16000, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[: -2 * 2000])
    with pytest.warns(UserWarning, match=r"cut\.wav': truncated: the header declares 192000 bytes"):
        streamed = classifier(str(cut))
    with pytest.warns(UserWarning, match="truncated"):
        assert_same_answer(streamed, classifier(decode_audio(cut, 16000)))
    # A NaN in a later block is named at its time in the recording (block 2 of 65,536 frames).
    nan_inside = noise(8.0, 16000, seed=17)
    nan_inside[100000] = np.nan
    soundfile.write(tmp_path / "nan.wav", nan_inside, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"nan\.wav.*NaN or infinite values \(first at 6\.250 s\)"):
        classifier(str(tmp_path / "nan.wav"))
    # Too short for the model: refused from the header, before any decoding.
    soundfile.write(tmp_path / "tiny.wav", noise(0.01, 44100, seed=18), 44100)
    with pytest.raises(ValueError, match=r"too short: 160 samples"):
        classifier(str(tmp_path / "tiny.wav"))
    # Silence is found over the whole stream.
    soundfile.write(tmp_path / "silent.wav", np.zeros((5 * 44100, 2), np.float32), 44100)
    with caplog.at_level("WARNING"):
        classifier(str(tmp_path / "silent.wav"))
    assert "silent" in caplog.text


def test_a_directory_is_not_an_audio_file(saved, tmp_path):
    classifier = saved["crnn_fgnl"]["pipe"]
    folder = tmp_path / "album"
    folder.mkdir()
    message = rf"'{folder}' is a directory, expected an audio file"
    for given in (str(folder), folder, {"bytes": None, "path": str(folder)}):
        with pytest.raises(IsADirectoryError, match=message):
            classifier(given)
    good = tmp_path / "good.wav"
    soundfile.write(good, noise(1.5, 16000, seed=19), 16000)
    answers = classifier([str(good), str(folder)], errors="return")
    assert answers[0] == classifier(str(good))
    assert answers[1]["error"].startswith(f"recording 1 of 2 ('{folder}'): '{folder}' is a directory, expected")
    with pytest.raises(ValueError, match=rf"{folder}: is a directory, expected an audio file"):
        decode_audio(folder, 16000)


def test_a_file_that_changes_while_it_is_classified_is_named(saved, tmp_path, monkeypatch):
    """The slices are planned from the header in `preprocess` and cut while decoding in `_forward`: a file rewritten
    in between (shorter or longer) is an error naming it, never logits of slices that were not classified."""
    classifier = saved["crnn_fgnl"]["pipe"]
    path = tmp_path / "growing.wav"
    preprocess = classifier.preprocess
    for seconds in (2.0, 5.0):
        soundfile.write(path, noise(3.5, 16000, seed=20), 16000)

        def preprocess_then_rewrite(inputs, seconds=seconds, **kwargs):
            model_inputs = preprocess(inputs, **kwargs)
            soundfile.write(path, noise(seconds, 16000, seed=21), 16000)
            return model_inputs

        monkeypatch.setattr(classifier, "preprocess", preprocess_then_rewrite)
        with pytest.raises(ValueError, match=r"growing\.wav' changed while it was being classified: .* 3 slices"):
            classifier(str(path), slice_batch_size=2)
    monkeypatch.undo()
    assert len(classifier(str(path))) == 3  # the 5 s file, classified again
