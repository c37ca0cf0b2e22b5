"""Regression tests of the hardening issue: each reproduces a case that lost data or misled the user."""

import json
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import genremert
from audio_genremert import decode_audio
from genremert import LCATrainingArguments
from genremert.data import audio_files
from genremert.training import preparation
from genremert.training.run_folder import LOCK_NAME, OutputDirLock, check_output_dir


REPO = Path(__file__).resolve().parent.parent


def tone(seconds, rate=16000, frequency=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write_appledouble(path: Path) -> None:
    """The `._<name>` sibling a copy through exFAT/SMB from a Mac leaves: an AppleDouble header."""
    path.write_bytes(struct.pack(">II", 0x00051607, 0x00020000) + b"Mac OS X        " + b"\x00" * 2000)


# ----------------------------------------------------------------------------------------------------------------------
# 1. AppleDouble siblings of MP3s without an ID3 tag
# ----------------------------------------------------------------------------------------------------------------------


def test_appledouble_sibling_does_not_hide_an_intact_mp3(tmp_path):
    song = tmp_path / "song.mp3"
    sf.write(song, tone(2.0), 16000, format="MP3")
    assert song.read_bytes()[:3] != b"ID3"  # no ID3 tag: libsndfile, given the path, looks for a resource fork
    write_appledouble(tmp_path / "._song.mp3")
    with pytest.raises(sf.LibsndfileError, match="resource fork"):
        sf.info(str(song))  # the library's behaviour that emptied artist20 copies
    assert decode_audio(song, 16000).shape == (32000,)
    assert audio_files.check_audio_file(song) is None
    assert audio_files.audio_num_samples(song, 16000) == 32000


def test_artist20_copy_with_appledouble_files_keeps_every_song(tmp_path):
    root = tmp_path / "mp3s-32k"
    for artist in range(2):
        for album in range(3):
            folder = root / f"artist_{artist}" / f"album_{album}"
            folder.mkdir(parents=True)
            for track in range(2):
                path = folder / f"{track:02d}.mp3"
                sf.write(path, tone(1.0, frequency=200 + 50 * artist + 10 * track), 16000, format="MP3")
                write_appledouble(folder / f"._{track:02d}.mp3")
    songs = genremert.load_artist20(tmp_path, split="album", on_bad_file="raise")
    assert sum(len(split) for split in songs.values()) == 12


# ----------------------------------------------------------------------------------------------------------------------
# 2. Empty or nearly empty splits are refused up front
# ----------------------------------------------------------------------------------------------------------------------


def write_small_gtzan(root: Path, per_genre: int) -> Path:
    for genre in genremert.GTZAN_GENRES:
        folder = root / "genres" / genre
        folder.mkdir(parents=True)
        for index in range(per_genre):
            sf.write(folder / f"{genre}.{index:05d}.wav", tone(0.5, 8000, 100 + 20 * index), 8000)
    return root


def test_split_lists_mostly_missing_on_disk_are_refused_before_training(tmp_path):
    root = write_small_gtzan(tmp_path, per_genre=3)
    with pytest.raises(genremert.BadAudioFilesError, match=r"not on disk \(train \d+ of 443, validation"):
        genremert.load_gtzan(root, split="fault_filtered")
    # Asked for deliberately: the songs on disk are used (and the missing ones still reported).
    with pytest.warns(UserWarning, match="missing: listed in the 'fault_filtered'"):
        songs = genremert.load_gtzan(root, split="fault_filtered", allow_missing_files=True)
    assert 0 < len(songs["train"]) < 443


def test_a_split_left_empty_is_refused_naming_split_and_counts(tmp_path):
    root = write_small_gtzan(tmp_path, per_genre=1)
    with pytest.raises(ValueError, match=r"the validation and test split\(s\) hold no song \(train 10, validation 0"):
        genremert.load_gtzan(root, split="random")


# ----------------------------------------------------------------------------------------------------------------------
# 3. A finished run is not replaced; one run per folder; no training without epochs
# ----------------------------------------------------------------------------------------------------------------------


def test_finished_output_dir_is_refused_unless_overwrite(tmp_path):
    (tmp_path / "all_results.json").write_text("{}")
    with pytest.raises(ValueError, match="already holds a finished run .*--overwrite_output_dir"):
        check_output_dir(str(tmp_path), do_train=True, overwrite=False, resume=None)
    check_output_dir(str(tmp_path), do_train=True, overwrite=True, resume=None)
    check_output_dir(str(tmp_path), do_train=True, overwrite=False, resume="last")
    check_output_dir(str(tmp_path), do_train=False, overwrite=False, resume=None)  # evaluation only


def test_two_runs_in_one_folder_are_refused_and_a_stale_lock_is_taken_over(tmp_path):
    with OutputDirLock(str(tmp_path)):
        assert (tmp_path / LOCK_NAME).exists()
        with pytest.raises(RuntimeError, match="being written by another run"):
            OutputDirLock(str(tmp_path)).__enter__()
    assert not (tmp_path / LOCK_NAME).exists()
    # A lock whose process is gone (a killed run) does not block the next one.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tmp_path / LOCK_NAME).write_text(f"{socket.gethostname()} {int(dead.stdout)}")
    with OutputDirLock(str(tmp_path)):
        pass


@pytest.mark.parametrize("epochs", [0, -1])
def test_training_without_epochs_is_refused(tmp_path, epochs):
    with pytest.raises(ValueError, match="--num_train_epochs must be > 0"):
        LCATrainingArguments(output_dir=str(tmp_path), do_train=True, num_train_epochs=epochs)


def test_the_script_refuses_a_finished_folder_without_touching_it(tmp_path):
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / "all_results.json").write_text('{"test_song_accuracy": 0.9}')
    completed = subprocess.run(
        [sys.executable, "run_classification.py", "--output_dir", str(output_dir), "--do_train"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode != 0 and "already holds a finished run" in completed.stderr
    assert json.loads((output_dir / "all_results.json").read_text()) == {"test_song_accuracy": 0.9}
    assert sorted(path.name for path in output_dir.iterdir()) == ["all_results.json"]


# ----------------------------------------------------------------------------------------------------------------------
# 6. Bad audio cache entries are cache misses
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["empty", "nan", "short", "not_npy"])
def test_a_bad_cache_entry_is_decoded_again_and_rewritten(tmp_path, damage):
    song = tmp_path / "song.wav"
    sf.write(song, tone(1.0), 16000)
    cache = tmp_path / "cache"
    expected = np.array(audio_files.load_audio(song, 16000, cache))
    (entry,) = list(cache.rglob("*.npy"))
    if damage == "empty":
        entry.write_bytes(b"")
    elif damage == "nan":
        np.save(entry, np.full_like(expected, np.nan))
    elif damage == "short":
        np.save(entry, expected[:100])
    else:
        entry.write_text("not an array")
    with pytest.warns(UserWarning, match="cache entry"):
        reloaded = audio_files.load_audio(song, 16000, cache)
    np.testing.assert_array_equal(reloaded, expected)
    np.testing.assert_array_equal(np.load(entry), expected)  # rewritten


def test_a_bad_source_file_is_named_not_the_cache(tmp_path):
    song = tmp_path / "broken.wav"
    sf.write(song, np.full(1000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(audio_files.AudioDecodeError, match=r"broken\.wav: decoded audio contains NaN"):
        audio_files.load_audio(song, 16000, tmp_path / "cache")


# ----------------------------------------------------------------------------------------------------------------------
# 7. Remote code needs no scipy; the card lists what inference needs
# ----------------------------------------------------------------------------------------------------------------------


def test_model_card_lists_the_inference_requirements():
    from tiny_configs import tiny_crnn_fgnl_config

    from genremert import build_model_card

    card = build_model_card(tiny_crnn_fgnl_config(), "someone/model", {}, {}, "none", 10, [])
    assert "## Requirements" in card and "pip install soundfile soxr" in card and "ffmpeg" in card


# ----------------------------------------------------------------------------------------------------------------------
# 8. A few ms of shortfall at the end of a lossy stream is not truncation; every format is listed
# ----------------------------------------------------------------------------------------------------------------------


def test_a_stream_a_few_ms_short_of_its_header_is_accepted_by_the_file_check(tmp_path, monkeypatch):
    """The up-front check accepts it silently; decoding reports a shortfall beyond the encoder's padding (pipeline and
    mp3 tests), so an ordinary lossy file is not warned about twice from a thread pool."""
    song = tmp_path / "song.ogg"
    sf.write(song, tone(2.0, 44100), 44100, format="OGG", subtype="VORBIS")

    class ShortStream(sf.SoundFile):  # what libsndfile gives for some published Vorbis files: 104 frames short
        def read(self, frames=-1, *args, **kwargs):
            data = super().read(frames, *args, **kwargs)
            return data[:-104] if self.tell() >= self.frames and len(data) > 104 else data

    monkeypatch.setattr(audio_files.sf, "SoundFile", ShortStream)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert audio_files.check_audio_file(song) is None


def test_really_truncated_files_are_still_rejected(tmp_path):
    song = tmp_path / "song.flac"
    sf.write(song, tone(3.0, 16000), 16000, format="FLAC")
    data = song.read_bytes()
    song.write_bytes(data[: len(data) // 2])
    assert audio_files.check_audio_file(song) is not None


def test_every_format_the_decoder_reads_is_listed(tmp_path):
    assert {".opus", ".ogg", ".flac", ".mp3", ".wav", ".aiff", ".au"} <= set(audio_files.AUDIO_SUFFIXES)
    album = tmp_path / "mp3s-32k"
    for artist in range(2):
        for index in range(3):
            folder = album / f"artist_{artist}" / f"album_{index}"
            folder.mkdir(parents=True)
            sf.write(folder / "01.opus", tone(1.0, 48000, 300 + 40 * artist), 48000, format="OGG", subtype="OPUS")
    songs = genremert.load_artist20(tmp_path, split="album", on_bad_file="raise")
    assert sum(len(split) for split in songs.values()) == 6


# ----------------------------------------------------------------------------------------------------------------------
# Publishing: the repository id is checked before any work, also in a dry run
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("repo_id", ["not a valid id!!", "no-namespace", "a/b/c", "user/--bad--"])
def test_invalid_repo_ids_are_refused_before_any_work(tmp_path, repo_id):
    from genremert.publishing import hub_upload

    with pytest.raises(hub_upload.HubUploadError, match="repo_id"):
        hub_upload.publish(tmp_path / "no-such-run", repo_id, dry_run=True)


# ----------------------------------------------------------------------------------------------------------------------
# Weak cases: a clear message naming the file / flag / value
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_labels", [0, -3])
def test_configs_refuse_a_non_positive_number_of_labels(num_labels):
    from configuration_genremert import CRNNFGNLConfig, GenreMERTConfig

    for config_class in (CRNNFGNLConfig, GenreMERTConfig):
        with pytest.raises(ValueError, match=rf"`num_labels` must be a positive number of classes, got {num_labels}"):
            config_class(num_labels=num_labels)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_slice_seconds_must_be_finite(value):
    from configuration_genremert import CRNNFGNLConfig

    with pytest.raises(ValueError, match="slice_seconds"):
        CRNNFGNLConfig(slice_seconds=value)


def test_malformed_config_overrides_name_the_flag_and_the_field():

    from genremert import ModelArguments
    from genremert.training.arguments import parse_config_overrides

    with pytest.raises(
        ValueError, match=r"--config_overrides: the value of 'conv_channels', '\[4,8', is not valid JSON"
    ):
        parse_config_overrides("conv_channels=[4,8")
    with pytest.raises(ValueError, match=r"--config_overrides .* gives an invalid CRNNFGNLConfig: .*gaussian_kernel"):
        preparation.build_config(ModelArguments(config_overrides="gaussian_kernel_size=4"), ["a", "b"], None)


def test_help_describes_the_script_and_lists_the_lca_flags_before_the_trainer_flags():
    completed = subprocess.run(
        [sys.executable, "run_classification.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    text = completed.stdout
    assert completed.returncode == 0
    assert text.startswith("usage: run_classification.py [PRESET.json]") and "JSON preset" in text
    assert text.index("model:") < text.index("data:") < text.index("LCA (") < text.index("Trainer (")
    assert text.index("--lambda_att") < text.index("--learning_rate")
    no_flag = text[text.index("--no_evaluate_counterfactual,") :][:200]
    assert "Turn --evaluate_counterfactual off" in no_flag


def test_conversion_of_text_empty_and_malicious_files_names_the_cause(tmp_path):
    import torch

    from genremert.publishing.conversion import ConversionError, load_reference_checkpoint

    text = tmp_path / "notes.ckpt"
    text.write_text("hello, not a checkpoint\n")
    with pytest.raises(ConversionError, match=r"not a PyTorch checkpoint \(it starts with b'hell'"):
        load_reference_checkpoint(text)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(ConversionError, match=r"empty \(0 bytes\)"):
        load_reference_checkpoint(empty)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo never",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Evil()}, evil)
    with pytest.raises(ConversionError, match=r"refers to the global (posix|os|nt)\.system"):
        load_reference_checkpoint(evil)


def test_pipeline_lists_floats_bad_items_and_silence(tmp_path, caplog):
    from tiny_configs import tiny_crnn_fgnl_config
    from transformers import pipeline

    from genremert import CRNNFGNLForAudioClassification

    model = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config()).eval()
    model.save_pretrained(tmp_path / "model")
    classifier = pipeline("audio-classification", model=str(tmp_path / "model"), trust_remote_code=True)
    with pytest.raises(TypeError, match="a list is a batch of recordings"):
        classifier([0.1] * 20000)
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.5), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all " * 50)
    with pytest.raises(ValueError, match=r"recording 1 of 3 \('.*bad\.wav'\)"):
        classifier([str(good), str(bad), str(good)])
    answers = classifier([str(good), str(bad), str(good)], errors="return")
    assert answers[0] == answers[2] and "error" in answers[1] and "bad.wav" in answers[1]["error"]
    with caplog.at_level("WARNING"):
        classifier(np.zeros(16000, dtype=np.float32))
    assert "silent" in caplog.text


# ----------------------------------------------------------------------------------------------------------------------
# Bad samples anywhere in a song: named before training; a non-finite loss names the batch's songs; a full disk
# ----------------------------------------------------------------------------------------------------------------------


def test_filling_the_cache_checks_every_sample_and_names_every_bad_song(tmp_path):
    from datasets import Dataset

    good = tmp_path / "good.wav"
    sf.write(good, tone(2.0), 16000, subtype="FLOAT")
    nan_inside = tone(2.0)
    nan_inside[12345] = np.nan  # between the up-front check's probe points
    sf.write(tmp_path / "nan.wav", nan_inside, 16000, subtype="FLOAT")
    loud = tone(2.0)
    loud[20000] = 1e20
    sf.write(tmp_path / "loud.wav", loud, 16000, subtype="FLOAT")
    assert audio_files.check_audio_file(tmp_path / "nan.wav") is None  # the probes miss it ...
    songs = Dataset.from_dict({"audio": [str(good), str(tmp_path / "nan.wav"), str(tmp_path / "loud.wav")]})
    with pytest.raises(genremert.BadAudioFilesError) as error:  # ... decoding every sample does not
        genremert.fill_cache(songs, 16000, tmp_path / "cache")
    message = str(error.value)
    assert "nan.wav: " in message and "NaN or infinite values (first at 0.772 s)" in message
    assert "loud.wav: " in message and "amplitude 1e+20" in message and "good.wav" not in message


def test_a_non_finite_loss_names_the_songs_of_the_batch(tmp_path):
    import torch
    from tiny_configs import tiny_crnn_fgnl_config

    from genremert import (
        CRNNFGNLForAudioClassification,
        LCATrainer,
        NonFiniteLossError,
        SliceCollator,
        build_feature_extractor,
    )

    model = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config())
    collator = SliceCollator(build_feature_extractor(model.config), {"quiet/song": 0, "loud/song": 1})
    args = LCATrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    trainer = LCATrainer(model=model, args=args, data_collator=collator)
    inputs = {
        "input_values": torch.stack([torch.zeros(16000) + 0.1, torch.full((16000,), 1e20)]),
        "labels": torch.tensor([0, 1]),
        "song_index": torch.tensor([0, 1]),
    }
    with pytest.raises(NonFiniteLossError, match=r"loudest first: loud/song \(peak 1e\+20\), quiet/song"):
        trainer._check_finite(torch.tensor(float("nan")), {}, inputs)


def test_a_full_disk_while_saving_says_so_and_which_checkpoint(tmp_path, monkeypatch):
    from transformers import Trainer

    from genremert import LCATrainer

    def full_disk(self, model, trial):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(Trainer, "_save_checkpoint", full_disk)
    trainer = LCATrainer.__new__(LCATrainer)
    trainer.args = LCATrainingArguments(output_dir=str(tmp_path), report_to=[])
    trainer.state = type("State", (), {"global_step": 7})()
    with pytest.raises(OSError, match=r"the disk is full while writing .*checkpoint-7 .*resume_from_checkpoint last"):
        trainer._save_checkpoint(None, None)


# ----------------------------------------------------------------------------------------------------------------------
# The README's commands on the demo's real output
# ----------------------------------------------------------------------------------------------------------------------


def test_readme_interpret_command_works_on_the_quick_demo_output(tmp_path):
    """`python demo.py --audio --quick` writes its own folder, and the README's `interpret.py` command (no dataset flags: they
    come from the run's run_args.json) works on its output; a second demo replaces its own runs."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    demo_dir = tmp_path / "demo_quick"
    for _ in range(2):  # the second run replaces the first (the demo passes --overwrite_output_dir)
        completed = subprocess.run(
            [sys.executable, "demo.py", "--audio", "--quick", "--output_dir", str(demo_dir)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
    figures = tmp_path / "figures"
    completed = subprocess.run(
        [sys.executable, "interpret.py", "--model_dir", str(demo_dir / "lca" / "seed0"), "--output_dir", str(figures)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads((figures / "interpretation.json").read_text())
    assert "bias_probe" in summary and any("evidence_" in figure for figure in summary["figures"])
    from genremert.audio_demo import parse_args

    assert parse_args(["--quick"]).output_dir == "outputs/demo_audio_quick"
    assert parse_args([]).output_dir == "outputs/demo_audio"


def test_truncated_audio_warns_and_non_audio_without_ffmpeg_is_not_blamed_on_ffmpeg(tmp_path, monkeypatch):
    import audio_genremert

    song = tmp_path / "cut.wav"
    sf.write(song, tone(10.0), 16000, subtype="PCM_16")
    data = song.read_bytes()
    song.write_bytes(data[: len(data) - 2 * 2000])  # 2000 frames (125 ms) of the data chunk are gone
    with pytest.warns(UserWarning, match=r"cut\.wav: truncated: the header declares 320000 bytes .* holds 316000"):
        assert decode_audio(song, 16000).shape == (158000,)

    junk = tmp_path / "notes.mp3"
    junk.write_text("these are notes, not music " * 40)

    def no_ffmpeg(*args, **kwargs):
        raise FileNotFoundError("ffmpeg")

    monkeypatch.setattr(audio_genremert.subprocess, "run", no_ffmpeg)
    with pytest.raises(audio_genremert.AudioDecodeError, match=r"notes\.mp3.*not readable as audio.*not audio or is"):
        decode_audio(junk, 16000)
