"""A newcomer's first hour: user mistakes of run_classification.py are one line and exit status 2, a misspelt
--dataset is refused before torch is imported, GTZAN without --data_dir offline says what to do, interpret.py names
a missing --model_dir, and tiny or odd training data (few songs per class, recordings shorter than a slice, a model
at chance level) is warned about through logging."""

import importlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import run_classification
from genremert.data import archives
from genremert.data.archives import DamagedArchiveError
from genremert.data.audio_files import BadAudioFile, BadAudioFilesError
from genremert.training import arguments
from genremert.training import run as training_run
from genremert.training.trainer import NonFiniteLossError


REPO = Path(__file__).resolve().parent.parent
TINY_CRNN = (
    "n_fft=512,hop_length=256,num_mel_bins=32,conv_channels=[4,8,8,8],fgnl_reduction=2,mose_hidden_size=4,"
    "gru_hidden_size=8"
)
# 3 singers × 3 albums × 2 songs of 1.5 s: 2 training songs per class (album split), every song shorter than 2 s.
TINY_SYNTHETIC = {"num_classes": 3, "albums_per_class": 3, "songs_per_album": 2, "song_seconds": 1.5}


def script(*argv, code=None, timeout=300):
    """Runs run_classification.py (or `code` with `argv` as its sys.argv) in a fresh offline interpreter."""
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "run_classification.py", *argv] if code is None else [sys.executable, "-c", code, *argv]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


# ----------------------------------------------------------------------------------------------------------------------
# 1. User errors: one line and exit status 2; bugs keep their traceback
# ----------------------------------------------------------------------------------------------------------------------


def test_a_user_error_of_the_script_is_one_line_with_status_2(tmp_path):
    result = script("--dataset", "artist20", "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        "error: --data_dir is required for --dataset artist20 (the folder holding the audio, or artist20-mp3s-32k.tgz)."
    ]


@pytest.mark.parametrize(
    "error",
    [
        ValueError("--slice_seconds must be > 0, got -1."),
        FileNotFoundError("gtzan: 3 song(s) of the split lists are missing under /data/gtzan."),
        FileExistsError("/data/x.extracted exists and is not an extraction of /data/x.tgz by this code."),
        BadAudioFilesError("gtzan", [BadAudioFile("a.wav", "cannot decode"), BadAudioFile("b.wav", "empty")]),
        DamagedArchiveError("/data/genres.tar.gz: not a readable archive (EOFError: ...)."),
        NonFiniteLossError("non-finite LCA loss (nan) at global step 3 (epoch 0.500)."),
    ],
    ids=lambda error: type(error).__name__,
)
def test_user_error_classes_print_error_and_return_2(monkeypatch, capsys, error):
    def failing_main(argv=None):
        raise error

    closed = []
    monkeypatch.setattr(training_run, "main", failing_main)
    monkeypatch.setattr(training_run, "end_process_group", lambda: closed.append(True))
    assert training_run.script_main(["--output_dir", "x"]) == 2
    assert capsys.readouterr().err == f"error: {error}\n"
    assert not closed  # the other ranks may still be running: no barrier after an error


def test_a_bug_keeps_its_traceback_and_a_good_run_exits_0(monkeypatch, capsys):
    def buggy_main(argv=None):
        raise KeyError("slices")  # a bug, not a user mistake

    monkeypatch.setattr(training_run, "main", buggy_main)
    with pytest.raises(KeyError, match="slices"):
        training_run.script_main([])
    closed = []
    monkeypatch.setattr(training_run, "main", lambda argv=None: {"test_frame_accuracy": 1.0})
    monkeypatch.setattr(training_run, "end_process_group", lambda: closed.append(True))
    assert training_run.script_main([]) == 0 and closed == [True]
    assert capsys.readouterr().err == ""
    monkeypatch.undo()
    with pytest.raises(ValueError, match="--data_dir is required for --dataset artist20"):  # main itself raises
        training_run.main(["--dataset", "artist20", "--output_dir", "x"])


# ----------------------------------------------------------------------------------------------------------------------
# 2. A misspelt --dataset: refused before anything heavy is imported
# ----------------------------------------------------------------------------------------------------------------------

IMPORTS_AFTER_RUN = """
import runpy, sys
sys.argv = ["run_classification.py", *sys.argv[1:]]
try:
    runpy.run_path("run_classification.py", run_name="__main__")
except SystemExit as exit:
    print(exit.code, sorted(name for name in ("torch", "transformers", "genremert") if name in sys.modules))
"""


def test_a_misspelt_dataset_is_refused_before_torch_is_imported(tmp_path):
    result = script("--dataset", "gtzn", "--output_dir", str(tmp_path), code=IMPORTS_AFTER_RUN, timeout=120)
    assert result.stdout.strip() == "2 []", (result.stdout, result.stderr[-3000:])
    assert result.stderr.strip().splitlines() == [
        "error: --dataset 'gtzn' is not a dataset: expected one of gtzan, artist20, magnatagatune, mtg_jamendo, fma, synthetic, custom "
        "(did you mean gtzan?). Your own data: --dataset_name <Hub id or folder>."
    ]
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps({"dataset": "artist_20", "do_train": True}))
    result = script(str(preset), code=IMPORTS_AFTER_RUN, timeout=120)  # the preset's value is checked too
    assert result.stdout.strip() == "2 []" and "--dataset 'artist_20' is not a dataset" in result.stderr


def test_the_quick_dataset_check_agrees_with_the_parser(tmp_path):
    assert run_classification.DATASETS == arguments.DATASETS
    problem = run_classification.dataset_flag_problem
    assert problem(["--dataset=mtat"]).startswith("--dataset 'mtat' is not a dataset: expected one of gtzan,")
    assert problem(["--dataset", "gtzn", "--dataset", "gtzan"]) is None  # the last one counts, as in argparse
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps({"dataset": "gtzn"}))
    assert problem([str(preset), "--dataset", "gtzan"]) is None  # flags after the preset override it
    assert "'gtzn'" in problem([str(preset)])
    for argv in ([], ["--dataset", "synthetic"], [str(tmp_path / "missing.json")], ["--dataset_name", "my_data/"]):
        assert problem(argv) is None, argv  # anything else is left to the full parser


# ----------------------------------------------------------------------------------------------------------------------
# 3. GTZAN without --data_dir, offline: one clear error; --help agrees with the README
# ----------------------------------------------------------------------------------------------------------------------


def http_client():
    """The HTTP client module huggingface_hub uses (httpx2 in huggingface_hub 2.x, httpx in 1.x)."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    pytest.skip("neither httpx2 nor httpx is installed")


def offline_errors():
    """`(id, a function raising what huggingface_hub raises offline, the reason the message must give)`."""
    import requests
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    def chained(outer, inner):
        def raise_it():
            try:
                raise inner
            except Exception as error:
                raise outer from error

        return raise_it

    def plain(error):
        def raise_it():
            raise error

        return raise_it

    hub_message = "An error happened while trying to locate the file on the Hub and we cannot find the requested files"
    client = http_client()
    return [
        (
            "HF_HUB_OFFLINE",
            chained(LocalEntryNotFoundError(hub_message), OfflineModeIsEnabled("offline mode is enabled.")),
            "offline mode: HF_HUB_OFFLINE is set",
        ),
        (
            "no network",
            chained(LocalEntryNotFoundError(hub_message), client.ConnectError("[Errno -2] Name or service not known")),
            "ConnectError: [Errno -2] Name or service not known",
        ),
        ("offline error", plain(OfflineModeIsEnabled("offline mode is enabled.")), "offline mode"),
        ("timeout", plain(client.ReadTimeout("The read operation timed out")), "ReadTimeout: The read operation"),
        ("proxy", plain(client.ProxyError("407 Proxy Authentication Required")), "ProxyError: 407 Proxy"),
        (
            "requests",
            plain(requests.exceptions.ConnectionError("Max retries exceeded with url")),
            "ConnectionError: Max retries exceeded with url",
        ),
        ("socket", plain(ConnectionRefusedError(111, "Connection refused")), "ConnectionRefusedError: [Errno 111]"),
    ]


def test_fetch_gtzan_offline_raises_one_clear_error(monkeypatch):
    import huggingface_hub

    for name, raise_it, reason in offline_errors():
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *args, raise_it=raise_it, **kwargs: raise_it())
        with pytest.raises(FileNotFoundError) as info:
            archives.fetch_gtzan()
        message = str(info.value)
        assert message.startswith(f"could not reach the Hugging Face Hub to download GTZAN ({reason}"), (name, message)
        assert "give --data_dir <folder with genres/ or genres.tar.gz>, or " in message, name
        assert info.value.__cause__ is None and info.value.__suppress_context__, name  # no chained tracebacks


def test_a_wrong_gtzan_revision_is_named(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import RevisionNotFoundError

    client = http_client()
    response = client.Response(404, request=client.Request("HEAD", "https://huggingface.co/datasets/marsyas/gtzan"))

    def missing_revision(*args, **kwargs):
        raise RevisionNotFoundError("404 Client Error. Revision Not Found.", response=response)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", missing_revision)
    with pytest.raises(ValueError, match=r"^--gtzan_revision 'v9' is not a revision of the Hub dataset marsyas/gtzan"):
        archives.fetch_gtzan("v9")


def test_gtzan_offline_through_the_script_is_one_line(monkeypatch, capsys, tmp_path):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub.")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    code = training_run.script_main(["--dataset", "gtzan", "--output_dir", str(tmp_path / "out"), "--do_train"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1, error
    assert error.startswith("error: could not reach the Hugging Face Hub to download GTZAN ("), error


def test_help_says_data_dir_is_optional_for_gtzan():
    help_text = " ".join(arguments.build_parser().format_help().split())
    data_dir = help_text[help_text.index("--data_dir DATA_DIR") : help_text.index("--split SPLIT")]
    assert "required for gtzan" not in data_dir, data_dir
    assert "Required for artist20 and magnatagatune; optional for gtzan" in data_dir, data_dir
    assert "downloaded from the Hub dataset marsyas/gtzan" in data_dir, data_dir


# ----------------------------------------------------------------------------------------------------------------------
# 4. interpret.py with a --model_dir that is not there names the folder, as robustness.py does
# ----------------------------------------------------------------------------------------------------------------------


def test_interpret_names_a_missing_model_dir(tmp_path, capsys):
    from genremert.analysis import cli as interpret_cli
    from genremert.analysis import robustness

    missing, empty, a_file = tmp_path / "missing", tmp_path / "empty", tmp_path / "a_file"
    empty.mkdir()
    a_file.write_text("")
    out = ["--output_dir", str(tmp_path / "figures")]
    cases = {
        missing: f"error: --model_dir {missing} does not exist, so it has no config.json: expected a genremert model "
        "folder",
        a_file: f"error: --model_dir {a_file} is a file, not a folder, so it has no config.json",
        empty: f"error: --model_dir {empty} has no config.json: expected a genremert model folder",
    }
    for folder, message in cases.items():
        assert interpret_cli.main(["--model_dir", str(folder), *out]) == 1, folder
        error = capsys.readouterr().err
        assert error.startswith(message) and error.count("\n") == 1, error
        assert "--dataset" not in error, error
    # robustness.py says the same of a missing folder, with the same exit status
    assert robustness.main(["--model_dir", str(missing), *out]) == 1
    assert capsys.readouterr().err == f"error: --model_dir {missing} does not exist.\n"
    assert not (tmp_path / "figures").exists()


def test_interpret_reports_a_clashing_archive_folder_in_one_line(tmp_path, capsys):
    """FileExistsError is a user error for interpret.py too (as for run_classification.py): an archive given as
    --data_dir whose extraction folder holds something else."""
    from tiny_configs import tiny_crnn_fgnl_config

    from genremert import CRNNFGNLForAudioClassification
    from genremert.analysis import cli as interpret_cli

    model_dir = tmp_path / "model"
    CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config()).save_pretrained(model_dir)
    capsys.readouterr()  # the progress bar of save_pretrained
    archive = tmp_path / "artist20-mp3s-32k.tgz"
    archive.write_bytes(b"not read: its folder is checked first")
    (tmp_path / "artist20-mp3s-32k.tgz.extracted").mkdir()
    (tmp_path / "artist20-mp3s-32k.tgz.extracted" / "notes.txt").write_text("mine")
    flags = ["--model_dir", str(model_dir), "--dataset", "artist20", "--data_dir", str(archive)]
    assert interpret_cli.main([*flags, "--output_dir", str(tmp_path / "figures")]) == 1
    error = capsys.readouterr().err  # after the progress bars of loading the model
    lines = [line for line in error.split("\n") if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in error, error
    assert lines[0].startswith(f"error: {tmp_path / 'artist20-mp3s-32k.tgz.extracted'} exists and is not an extraction")


# ----------------------------------------------------------------------------------------------------------------------
# 5. Tiny or odd training data: warnings through logging
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic_cache")


def test_a_tiny_run_warns_of_few_songs_short_recordings_and_chance_level(synthetic_cache, tmp_path, caplog):
    flags = [
        "--model_type", "crnn_fgnl", "--dataset", "synthetic", "--data_dir", str(synthetic_cache),
        "--synthetic_options", json.dumps(TINY_SYNTHETIC), "--slice_seconds", "2.0", "--config_overrides", TINY_CRNN,
        "--num_train_epochs", "1", "--learning_rate", "0", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "8", "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no",
        "--vote_threshold", "none", "--output_dir", str(tmp_path / "out"), "--do_train", "--do_predict",
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="genremert.training.run"):
        results = training_run.main(flags)
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name == "genremert.training.run" and record.levelno == logging.WARNING
    ]
    few = [message for message in warnings if message.startswith("few training songs")]
    assert few == [
        "few training songs: 3 of 3 classes have fewer than 5 (singer_0: 2, singer_1: 2, singer_2: 2); the model can "
        "hardly learn them and their scores will be noisy. Give more songs (or a larger --max_train_samples, if set)."
    ], warnings
    short = [message for message in warnings if "shorter than one 2 s slice" in message]
    assert len(short) == 1, warnings
    assert short[0].startswith(
        "24 of 24 recordings are shorter than one 2 s slice and are zero-padded to it (train: 6, validation: 6, "
        "test: 6, test_noisy: 6); e.g. singer_0/album_2/song_0 (train, 1.50 s), "
    ), short[0]
    assert short[0].count("1.50 s") == 5 and " and 19 more. " in short[0], short[0]
    chance = [message for message in warnings if "chance level" in message]
    assert results["test_frame_accuracy"] == pytest.approx(1 / 3)  # a model that never moved: one class for all
    assert chance == [
        "test: frame accuracy 0.333, song accuracy 0.333 is at chance level or below (1/3 = 0.333, margin 0.05): "
        "the model did not learn. Train longer (--num_train_epochs), check --learning_rate, give more training "
        "songs, or check that the labels match the audio."
    ], warnings  # the clean test split only, not test_noisy


def test_the_data_warnings_stay_quiet_on_reasonable_data(synthetic_cache):
    from genremert.data.synthetic import load_synthetic

    songs = load_synthetic(**TINY_SYNTHETIC, cache_dir=synthetic_cache)
    assert training_run.short_recordings_warning(songs, 16000, 1.0) is None  # 1.5 s songs, 1 s slices
    assert "4 of 4 recordings" in training_run.short_recordings_warning(
        {"test": songs["test"].select(range(4))}, 16000, 1.6
    )
    names = ["blues", "jazz", "rock"]
    assert training_run.few_training_songs_warning([0, 1, 2] * 5, names, multi_label=False) is None
    assert training_run.few_training_songs_warning([0] * 5 + [1] * 5, names, multi_label=False).startswith(
        "few training songs: 1 of 3 classes have fewer than 5 (rock: 0);"
    )
    tags = [[0, 1]] * 5 + [[2]] * 4
    assert "1 of 3 tags have fewer than 5 (rock: 4)" in training_run.few_training_songs_warning(tags, names, True)
    metrics = {"test_frame_accuracy": 0.62, "test_song_accuracy": 0.7}
    assert training_run.chance_level_warning("test", metrics, 3) is None
    assert training_run.chance_level_warning("test", {"test_frame_accuracy": 0.38}, 3).startswith(
        "test: frame accuracy 0.380 is at chance level or below (1/3 = 0.333, margin 0.05)"
    )
    assert training_run.chance_level_warning("test", {"test_frame_accuracy": 0.05}, 10) is not None  # below chance
    assert training_run.chance_level_warning("test", {"test_frame_accuracy": 0.16}, 10) is None
