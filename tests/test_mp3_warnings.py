"""Ordinary MP3s decode without a warning: one written with soundfile (LAME, with a gapless tag) and one without a
gapless tag (ffmpeg `-write_xing 0`, as many encoders write them), whose header length libsndfile only estimates.
Checked through every path a song takes: the loaders' up-front check, decoding, streaming, the cache, the pipeline."""

import shutil
import subprocess
import warnings

import numpy as np
import pytest
import soundfile as sf
from tiny_configs import tiny_crnn_fgnl_config

import audio_genremert
from genremert import CRNNFGNLForAudioClassification
from genremert.data.audio_files import load_audio, validate_audio_files


def tone(seconds: float, rate: int) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440.0 * time)).astype(np.float32)


@pytest.fixture(scope="module")
def mp3_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mp3")
    files = []
    for rate, seconds in ((16000, 2.3), (44100, 3.7)):
        path = folder / f"soundfile_{rate}.mp3"
        sf.write(path, tone(seconds, rate), rate, format="MP3")
        files.append(path)
    if shutil.which("ffmpeg") is not None:  # CI installs it; without it only the soundfile files are checked
        for rate, seconds in ((22050, 7.3), (44100, 29.9), (16000, 2.5)):
            path = folder / f"no_gapless_tag_{rate}_{seconds}.mp3"
            source = f"sine=frequency=440:sample_rate={rate}:duration={seconds}"
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, "-write_xing", "0",
                            str(path)], check=True)  # fmt: skip
            files.append(path)
    return files


def test_ordinary_mp3s_decode_without_a_warning(mp3_files, tmp_path):
    from transformers import pipeline

    folder = tmp_path / "model"
    CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config()).save_pretrained(folder)
    classifier = pipeline("genremert-audio-classification", model=str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test, naming itself
        assert validate_audio_files(mp3_files) == []
        for path in mp3_files:
            waveform = audio_genremert.decode_audio(path, 16000)
            assert waveform.shape == (audio_genremert.decoded_num_samples(path, 16000),)
            assert sum(block.size for block in audio_genremert.stream_audio(path, 16000)) == waveform.size
            np.testing.assert_array_equal(load_audio(path, 16000, cache_dir=tmp_path / "cache"), waveform)
            assert len(classifier(str(path), top_k=None)) == 3


def test_an_mp3_whose_end_is_cut_still_warns(tmp_path):
    """An MP3 with a gapless tag states its exact length: 70 ms missing at its end is said, naming the file."""
    path = tmp_path / "cut.mp3"
    sf.write(path, tone(20.0, 44100), 44100, format="MP3")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.995)])  # the last 0.5 % of the bytes: 2,977 frames (67 ms)
    with pytest.warns(UserWarning, match=r"cut\.mp3: the stream ends \d+ frames \(6\d ms\) before its header says"):
        audio_genremert.decode_audio(path, 16000)
