"""End to end: run_classification.py on a tiny synthetic set, in one process and in two CPU processes; presets; bad
input (unknown names, missing data_dir, mismatched checkpoint labels, bad overrides)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import genremert
from genremert import LCATrainingArguments
from genremert.data import audio_files
from genremert.training import arguments, preparation, run_folder
from genremert.training import run as training_run


REPO = Path(__file__).resolve().parent.parent
SYNTHETIC = {
    "num_classes": 3,
    "albums_per_class": 3,
    "songs_per_album": 2,
    "song_seconds": 3.0,
}
TINY_CRNN = "n_fft=512,hop_length=256,num_mel_bins=32,conv_channels=[4,8,8,8],fgnl_reduction=2,mose_hidden_size=4,gru_hidden_size=8"
# 3 classes × 2 songs per split, 3 one-second slices per song → 18 slices per evaluation split.
SLICES_PER_SPLIT = 18


TINY_GENREMERT = (
    "attention_hidden_size=4,representation_size=8,backbone_config.hidden_size=32,"
    "backbone_config.num_hidden_layers=2,backbone_config.num_attention_heads=2,"
    "backbone_config.intermediate_size=37,backbone_config.conv_dim=[16,16,16],"
    "backbone_config.conv_stride=[5,4,4],backbone_config.conv_kernel=[10,4,4],"
    "backbone_config.num_conv_pos_embeddings=16,backbone_config.num_conv_pos_embedding_groups=2"
)
TINY_OVERRIDES = {"crnn_fgnl": TINY_CRNN, "genremert": TINY_GENREMERT}


def tiny_flags(data_dir, output_dir, *extra, model_type="crnn_fgnl"):
    return [
        "--model_type",
        model_type,
        "--dataset",
        "synthetic",
        "--data_dir",
        str(data_dir),
        "--synthetic_options",
        json.dumps(SYNTHETIC),
        "--bias_class",
        "0",
        "--slice_seconds",
        "1.0",
        "--config_overrides",
        TINY_OVERRIDES[model_type],
        "--counterfactual",
        "learned",
        "--cf_warmup_epochs",
        "1",
        "--num_train_epochs",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--per_device_eval_batch_size",
        "4",  # 2 processes × 4 = 8 per step: the last step is padded
        "--learning_rate",
        "1e-3",
        "--eval_strategy",
        "epoch",
        "--save_strategy",
        "epoch",
        "--logging_strategy",
        "epoch",
        "--report_to",
        "tensorboard",
        "--disable_tqdm",
        "true",
        "--output_dir",
        str(output_dir),
        "--do_train",
        "--do_eval",
        "--do_predict",
        *extra,
    ]


def run_script(command, env_extra=None, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.update(env_extra or {})
    result = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"exit {result.returncode}\nSTDOUT:\n{result.stdout[-4000:]}\nSTDERR:\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic_cache")


@pytest.fixture(scope="module")
def single_process_run(data_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("single") / "out"
    run_script([sys.executable, "run_classification.py", *tiny_flags(data_dir, output_dir)])
    return output_dir


def test_pipeline_reproduces_the_song_level_test_figures(single_process_run, data_dir):
    """The song rule that all_results.json (and so the model card) reports is the rule the saved folder's pipeline
    applies: the same decoding, slicing and validation-chosen vote threshold, saved in the config."""
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import pipeline

    from genremert.publishing.model_card import published_rule_metrics

    results = json.loads((single_process_run / "all_results.json").read_text())
    config = json.loads((single_process_run / "config.json").read_text())
    assert config["vote_threshold"] == results["eval_vote_threshold"]
    assert config["song_aggregation"] == "vote" and config["slice_remainder"] == "drop"
    card_figures = published_rule_metrics(results, SimpleNamespace(**config))

    classifier = pipeline("audio-classification", model=str(single_process_run), trust_remote_code=True)
    songs = genremert.load_synthetic(**SYNTHETIC, bias_class=0, cache_dir=str(data_dir))
    for split in ("test", "test_noisy"):
        labels = songs[split]["label"]
        names = songs[split].features["label"].names
        predictions = [names.index(classifier(path, top_k=1)[0]["label"]) for path in songs[split]["audio"]]
        assert accuracy_score(labels, predictions) == pytest.approx(card_figures[f"{split}_song_accuracy"], abs=1e-9)
        f1 = f1_score(labels, predictions, labels=range(len(names)), average="weighted", zero_division=0)
        assert f1 == pytest.approx(card_figures[f"{split}_song_f1"], abs=1e-9)


def check_results(output_dir, world_size):
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["world_size"] == world_size
    for prefix in ("eval", "test", "test_noisy"):
        for key in ("frame_accuracy", "frame_f1", "song_accuracy", "song_f1"):
            assert 0.0 <= results[f"{prefix}_{key}"] <= 1.0, f"{prefix}_{key}"
        # Every slice and every song counted exactly once, whatever the number of processes.
        assert results[f"{prefix}_num_slices"] == SLICES_PER_SPLIT
        assert results[f"{prefix}_num_songs"] == 6
        assert f"{prefix}_counterfactual_song_f1" in results  # Table 4: the counterfactual branch's own scores
        assert f"{prefix}_loss_att" in results
    # Every argument is kept as JSON (the model card reads the LCA weights from it; training_args.bin is a pickle).
    run_args = json.loads((output_dir / "run_args.json").read_text())
    assert run_args["model_args"]["model_type"] == results["model_type"]
    assert run_args["data_args"]["dataset"] == "synthetic"
    assert "lambda_effect" in run_args["training_args"]
    assert run_args["torch_num_threads"] == 1  # OMP_NUM_THREADS=1: results depend on the thread count
    # The threshold was chosen on validation and applied unchanged to both test sets.
    assert results["test_vote_threshold"] == results["eval_vote_threshold"] == results["test_noisy_vote_threshold"]
    for name in (
        "confusion_matrix_test_frame",
        "confusion_matrix_test_song",
        "confusion_matrix_test_noisy_song",
    ):
        assert (output_dir / f"{name}.png").exists() and (output_dir / f"{name}.json").exists()
    matrix = json.loads((output_dir / "confusion_matrix_test_frame.json").read_text())["matrix"]
    assert int(np.sum(matrix)) == SLICES_PER_SPLIT
    assert list((output_dir / "runs").rglob("events.out.tfevents*")), "no TensorBoard logs"
    # Training logged every LCA term separately.
    state = json.loads((output_dir / "trainer_state.json").read_text())
    train_logs = [log for log in state["log_history"] if "loss" in log]
    assert {
        "loss_ce_main",
        "loss_effect",
        "loss_ce_cf",
        "loss_ent_cf",
        "loss_ent_main",
        "loss_att",
    } <= set(train_logs[-1])
    return results


def test_single_process_run_writes_results_and_a_pipeline_ready_model(
    single_process_run,
):
    results = check_results(single_process_run, world_size=1)
    assert results["distributed_type"] == "DistributedType.NO"
    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "modeling_crnn_fgnl.py",
        "modeling_lca_genremert.py",
        "audio_genremert.py",
    ):
        assert (single_process_run / name).exists(), name

    from transformers import pipeline

    classifier = pipeline("audio-classification", model=str(single_process_run), trust_remote_code=True)
    waveform = (0.1 * np.random.default_rng(0).standard_normal(16000 * 2)).astype(np.float32)
    answer = classifier(waveform)
    assert {item["label"] for item in answer} <= {"singer_0", "singer_1", "singer_2"}
    assert abs(sum(item["score"] for item in answer) - 1.0) < 1e-3


@pytest.mark.parametrize("model_type", ["crnn_fgnl", "genremert"])
def test_two_cpu_processes_count_every_slice_once(model_type, data_dir, tmp_path):
    # DDP on 2 gloo ranks, with a warm-up (the counterfactual branch is unused in epoch 1) and, for GenreMERT, a
    # frozen backbone: neither may trip DDP; the slices of the padded last eval batch must be counted once.
    if shutil.which("accelerate") is None:
        pytest.skip("the accelerate launcher is not installed")
    output_dir = tmp_path / "ddp"
    run_script(
        [
            "accelerate",
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            str(29533 + (model_type == "genremert")),
            "run_classification.py",
            *tiny_flags(data_dir, output_dir, model_type=model_type),
        ],
        env_extra={"ACCELERATE_USE_CPU": "true"},
    )
    results = check_results(output_dir, world_size=2)
    assert results["distributed_type"] == "DistributedType.MULTI_CPU"


def test_checkpoint_with_other_labels_is_refused(single_process_run, data_dir, tmp_path):
    # The saved model knows 3 singers; a 4-singer dataset must be refused, naming both label lists.
    flags = tiny_flags(data_dir, tmp_path / "out")
    flags[flags.index("--synthetic_options") + 1] = json.dumps({**SYNTHETIC, "num_classes": 4})
    config_at = flags.index("--config_overrides")
    del flags[config_at : config_at + 2]
    with pytest.raises(ValueError, match=r"id2label = \['singer_0', 'singer_1', 'singer_2'\].*singer_3"):
        training_run.main(flags + ["--model_name_or_path", str(single_process_run)])
    # The same for resuming from a checkpoint of the 3-singer run.
    checkpoint = sorted(single_process_run.glob("checkpoint-*"))[0]
    with pytest.raises(ValueError, match="do not match the dataset"):
        training_run.main(
            flags
            + [
                "--config_overrides",
                TINY_CRNN,
                "--resume_from_checkpoint",
                str(checkpoint),
            ]
        )


def test_unknown_names_and_missing_data_dir_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        genremert.parse_arguments(["--dataset", "mtat", "--output_dir", str(tmp_path)])
    assert "invalid choice: 'mtat'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        genremert.parse_arguments(["--model_type", "resnet", "--output_dir", str(tmp_path)])
    assert "invalid choice: 'resnet'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--dataset must be one of"):
        genremert.DataTrainingArguments(dataset="mtat")
    with pytest.raises(ValueError, match="--model_type must be one of"):
        genremert.ModelArguments(model_type="resnet")
    with pytest.raises(ValueError, match="--data_dir is required for --dataset artist20"):
        genremert.parse_arguments(["--dataset", "artist20", "--output_dir", str(tmp_path)])
    # GTZAN without --data_dir is fetched from the Hub (tests/test_your_data.py); an archive may be the data_dir.
    genremert.parse_arguments(["--dataset", "gtzan", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="neither a folder nor a .tar.gz/.tgz/.zip archive"):
        genremert.parse_arguments(
            [
                "--dataset",
                "artist20",
                "--data_dir",
                str(tmp_path / "nope"),
                "--output_dir",
                str(tmp_path),
            ]
        )
    with pytest.raises(ValueError, match="vote_threshold"):
        genremert.DataTrainingArguments(vote_threshold="1.5")


def test_config_overrides_are_parsed_and_checked():
    overrides = arguments.parse_config_overrides("a=1,b=[4,8],c.d=x,e=true")
    assert overrides == {"a": 1, "b": [4, 8], "c.d": "x", "e": True}
    model_args = genremert.ModelArguments(model_type="crnn_fgnl", config_overrides=TINY_CRNN)
    config = preparation.build_config(model_args, ["a", "b"], slice_seconds=1.5)
    assert config.conv_channels == [4, 8, 8, 8] and config.num_labels == 2 and config.slice_seconds == 1.5
    model_args = genremert.ModelArguments(
        model_type="genremert", config_overrides="backbone_config.num_hidden_layers=2"
    )
    assert preparation.build_config(model_args, ["a", "b"], None).backbone_config.num_hidden_layers == 2
    with pytest.raises(ValueError, match="unknown field 'conv_channel'"):
        preparation.build_config(
            genremert.ModelArguments(config_overrides="conv_channel=[4]"),
            ["a"],
            None,
        )
    with pytest.raises(ValueError, match="num_labels"):
        preparation.build_config(
            genremert.ModelArguments(config_overrides="num_labels=4"),
            ["a"],
            None,
        )


PRESETS = sorted((REPO / "configs").glob("*.json"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_presets_parse_and_match_the_paper(preset, tmp_path):
    model_args, data_args, training_args = genremert.parse_arguments(
        [
            str(preset),
            "--data_dir",
            str(tmp_path),
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert isinstance(training_args, LCATrainingArguments)
    assert training_args.learning_rate == 1e-4 and training_args.per_device_train_batch_size == 16
    assert training_args.output_dir == str(tmp_path / "out")  # flags after the file override it
    if data_args.dataset == "magnatagatune":  # tagging presets: one plain and one LCA per model
        assert data_args.split == "directory" and training_args.metric_for_best_model == "song_roc_auc"
        lca = "_lca_mtat" in preset.name
        partner = preset.parent / (
            preset.name.replace("_lca_mtat", "_mtat") if lca else preset.name.replace("_mtat", "_lca_mtat")
        )
        assert partner.is_file() and partner != preset
        if model_args.counterfactual == "learned":  # entropy weights for sigmoid tags (docs/tagging.md)
            assert training_args.lambda_ent_main == training_args.lambda_ent_cf == 0.1
            assert training_args.cf_warmup_epochs == 20
        return
    if data_args.dataset == "gtzan":
        assert model_args.model_type == "genremert" and training_args.num_train_epochs == 300
        assert data_args.slice_seconds == 10.0 and data_args.slice_overlap_seconds == 1.0
    else:
        assert data_args.dataset == "artist20" and model_args.model_type == "crnn_fgnl"
        assert training_args.num_train_epochs == 800
        assert data_args.slice_seconds in (3.0, 5.0, 10.0)
    if model_args.counterfactual == "learned":
        assert training_args.cf_warmup_epochs == 20
        assert training_args.lca_weights == {
            "ce_main": 0.7,
            "effect": 1.0,
            "ce_cf": 0.6,
            "ent_cf": 2.0,
            "ent_main": 1.5,
            "att": 2.0,
        }


def test_resume_skips_a_half_written_checkpoint(single_process_run, tmp_path):
    # A copy of the run whose newest checkpoint was interrupted while saving (no trainer_state.json).
    output_dir = tmp_path / "run"
    shutil.copytree(single_process_run, output_dir)
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    good, newest = checkpoints[-2], checkpoints[-1]
    (newest / "trainer_state.json").unlink()
    assert run_folder.last_complete_checkpoint(str(output_dir)) == str(good)
    args = LCATrainingArguments(output_dir=str(output_dir), resume_from_checkpoint="last", report_to=[])
    assert preparation.resolve_checkpoint(args, ["singer_0", "singer_1", "singer_2"]) == str(good)
    args = LCATrainingArguments(output_dir=str(output_dir), resume_from_checkpoint=str(newest), report_to=[])
    with pytest.raises(ValueError, match=r"cannot be resumed from: .*trainer_state\.json is missing"):
        preparation.resolve_checkpoint(args, ["singer_0", "singer_1", "singer_2"])


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("torn_state", r"trainer_state\.json is not valid JSON"),
        ("truncated_weights", r"model\.safetensors is damaged"),
        ("empty_optimizer", r"optimizer\.pt is empty"),
        ("missing_scheduler", r"scheduler\.pt is missing"),
        ("flipped_byte", r"optimizer\.pt does not match its checksum"),
    ],
)
def test_resume_verifies_checkpoints_and_falls_back_to_the_newest_good_one(
    single_process_run, tmp_path, caplog, damage, reason
):
    output_dir = tmp_path / "run"
    shutil.copytree(single_process_run, output_dir)
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    good, newest = checkpoints[-2], checkpoints[-1]
    assert (newest / "checksums.json").is_file()  # written when the Trainer saved it
    if damage == "torn_state":
        (newest / "trainer_state.json").write_text('{"global_step": 4, "log_hist')
    elif damage == "truncated_weights":
        data = (newest / "model.safetensors").read_bytes()
        (newest / "model.safetensors").write_bytes(data[: len(data) // 3])
    elif damage == "empty_optimizer":
        (newest / "optimizer.pt").write_bytes(b"")
    elif damage == "missing_scheduler":
        (newest / "scheduler.pt").unlink()
    else:
        data = bytearray((newest / "optimizer.pt").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (newest / "optimizer.pt").write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        assert run_folder.last_complete_checkpoint(str(output_dir)) == str(good)
    assert any(re.search(reason, record.getMessage()) for record in caplog.records), caplog.text
    # When no checkpoint is good, the error lists every one, naming the bad files.
    (good / "optimizer.pt").write_bytes(b"")
    for older in checkpoints[:-2]:
        shutil.rmtree(older)
    with pytest.raises(ValueError, match=rf"no checkpoint .* can be resumed from:\n .*{reason}"):
        run_folder.last_complete_checkpoint(str(output_dir))


def test_resumed_script_run_reproduces_the_uninterrupted_run(single_process_run, data_dir, tmp_path):
    # As if the 2-epoch run had been killed after epoch 1 (the end of its 1-epoch warm-up): a new process resumes
    # from the epoch-1 checkpoint and must end with the same weights, hence the same test metrics.
    checkpoints = sorted(single_process_run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    output_dir = tmp_path / "resumed"
    output_dir.mkdir()
    shutil.copytree(checkpoints[0], output_dir / checkpoints[0].name)
    run_script(
        [
            sys.executable,
            "run_classification.py",
            *tiny_flags(data_dir, output_dir, "--resume_from_checkpoint", "last"),
        ]
    )
    full = json.loads((single_process_run / "all_results.json").read_text())
    resumed = json.loads((output_dir / "all_results.json").read_text())
    for key in (
        "test_frame_f1",
        "test_song_f1",
        "test_loss",
        "test_noisy_frame_f1",
        "eval_loss",
        "eval_loss_att",
    ):
        assert resumed[key] == full[key], key
    # train_loss is the mean over every step of the run, not over the resumed steps only.
    assert resumed["train_loss"] == pytest.approx(full["train_loss"], rel=1e-6, abs=1e-9)
    from safetensors.torch import load_file

    full_weights = load_file(single_process_run / "model.safetensors")
    resumed_weights = load_file(output_dir / "model.safetensors")
    assert all((full_weights[k] == resumed_weights[k]).all() for k in full_weights)


def test_quick_demo_prints_the_side_by_side_table(data_dir, tmp_path):
    output_dir = tmp_path / "demo"
    result = run_script(
        [
            sys.executable,
            "demo.py",
            "--audio",
            "--quick",
            "--epochs",
            "1",
            "--output_dir",
            str(output_dir),
            "--data_dir",
            str(data_dir),
        ]
    )
    for row in (
        "song F1, clean test",
        "song F1, noise on all",
        "shortcut gap, song F1 (clean − noisy)",
        "noisy songs of other classes → biased",
        "mean ± std over seeds [0, 1, 2]",
        "Every song row uses the plain majority vote",
    ):
        assert row in result.stdout, row
    demo = json.loads((output_dir / "demo_results.json").read_text())
    assert demo["sentence"] in result.stdout and "(95 % CI" in demo["sentence"]
    for run in ("plain", "lca"):
        assert set(demo["summary"]["variants"][run]["runs"]) == {"0", "1", "2"}
        for seed in range(3):
            assert (output_dir / run / f"seed{seed}" / "model.safetensors").exists()
    assert demo["sentence"] in (output_dir / "summary.md").read_text()


def test_max_samples_count_songs_not_slices():
    import datasets

    songs = datasets.Dataset.from_dict({"song_id": [f"s{i}" for i in range(10)], "label": [i % 2 for i in range(10)]})
    chosen = preparation.select_songs(songs, 4, seed=0)
    assert len(chosen) == 4 and len(set(chosen["song_id"])) == 4
    assert chosen["song_id"] == preparation.select_songs(songs, 4, seed=0)["song_id"]  # same seed, same songs
    assert preparation.select_songs(songs, None, seed=0) is songs
    assert len(preparation.select_songs(songs, 50, seed=0)) == 10
    with pytest.raises(ValueError, match="--max_eval_samples counts songs"):
        genremert.DataTrainingArguments(max_eval_samples=0)


def test_resuming_with_another_architecture_is_refused_before_anything_is_written(single_process_run, tmp_path):
    output_dir = tmp_path / "run"
    checkpoint = sorted(single_process_run.glob("checkpoint-*"))[0]
    output_dir.mkdir()
    shutil.copytree(checkpoint, output_dir / checkpoint.name)
    flags = tiny_flags(output_dir.parent / "synthetic_cache", output_dir, "--resume_from_checkpoint", "last")
    flags[flags.index("--config_overrides") + 1] = TINY_CRNN.replace("gru_hidden_size=8", "gru_hidden_size=6")
    with pytest.raises(
        ValueError, match=r"holds a model of another architecture .*(head\.classifier|recurrent\.gru_1)"
    ):
        training_run.main(flags)
    assert sorted(path.name for path in output_dir.iterdir()) == [checkpoint.name]  # run_args.json not written


def test_final_scores_reach_tensorboard(single_process_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in (single_process_run / "runs").rglob("events.out.tfevents*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags.update(accumulator.Tags()["scalars"])
    # Test scores were logged only to all_results.json before; the final evaluation also gets its thresholded vote.
    assert {"test/song_f1", "test/noisy_song_accuracy", "eval/song_accuracy_thresholded"} <= tags, sorted(tags)


def test_non_finite_model_state_stops_the_run_naming_the_tensor(tmp_path):
    from tiny_configs import tiny_crnn_fgnl_config

    from genremert import CRNNFGNLForAudioClassification, NonFiniteLossError
    from genremert.training.run_folder import ChecksumCallback

    model = CRNNFGNLForAudioClassification(tiny_crnn_fgnl_config())
    model.conv_blocks[0].norm.running_var.fill_(float("inf"))
    state = SimpleNamespace(global_step=3, is_world_process_zero=True)
    args = SimpleNamespace(output_dir=str(tmp_path))
    with pytest.raises(NonFiniteLossError, match=r"step 3: .*conv_blocks\.0\.norm\.running_var"):
        ChecksumCallback().on_save(args, state, None, model=model)


def test_the_shortcut_protocol_on_any_dataset(tmp_path):
    """--bias_class NAME on a dataset without built-in noise (artist20 layout): the class's training and validation
    songs get the band noise, test_noisy is added, and the shortcut metrics are reported."""
    import soundfile as sf

    root = tmp_path / "artist20" / "mp3s-32k"
    rng = np.random.default_rng(0)
    for artist in range(3):
        for album in range(3):
            folder = root / f"artist_{artist}" / f"album_{album}"
            folder.mkdir(parents=True)
            for track in range(2):
                t = np.arange(16000 * 2) / 16000
                tone = 0.2 * np.sin(2 * np.pi * (220 + 110 * artist) * t) + 0.01 * rng.standard_normal(t.size)
                sf.write(folder / f"{track}.wav", tone.astype(np.float32), 16000)
    output_dir = tmp_path / "out"
    flags = tiny_flags(tmp_path / "unused", output_dir)
    for flag in ("--synthetic_options", "--bias_class", "--data_dir", "--dataset"):
        position = flags.index(flag)
        del flags[position : position + 2]
    flags += ["--dataset", "artist20", "--data_dir", str(tmp_path / "artist20"), "--bias_class", "artist_1"]
    flags += ["--bias_snr_db", "10", "--num_train_epochs", "1", "--cf_warmup_epochs", "0"]
    results = training_run.main(flags)
    for key in ("shortcut_song_f1_gap", "test_noisy_song_biased_rate", "test_song_bias_recall"):
        assert key in results and np.isfinite(results[key]), key
    assert results["test_noisy_num_songs"] == results["test_num_songs"] == 6

    # The noise is where the protocol says: on class 1's training songs only, and on every test_noisy song.

    songs = genremert.load_artist20(tmp_path / "artist20")
    noise = audio_files.BandNoise((3000.0, 5000.0), -10.0, 0)
    flags_by_split = {"train": [label == 1 for label in songs["train"]["label"]]}
    slices = genremert.slice_songs(songs["train"], 16000, 1.0, noise=noise, noisy_songs=flags_by_split["train"])
    clean = genremert.slice_songs(songs["train"], 16000, 1.0)
    for row in range(0, len(slices), 3):
        label = slices[row]["label"]
        difference = np.abs(np.asarray(slices[row]["input_values"]) - np.asarray(clean[row]["input_values"])).max()
        assert (difference > 1e-3) == (label == 1), (row, label, difference)


# ----------------------------------------------------------------------------------------------------------------------
# MTG-Jamendo and FMA through run_classification (the trees of tests/test_next_corpora.py)
# ----------------------------------------------------------------------------------------------------------------------


def corpus_flags(dataset, data_dir, output_dir, *extra):
    """`tiny_flags` on a corpus instead of the synthetic set: one training step, then evaluation and test."""
    flags = tiny_flags(output_dir.parent / "unused", output_dir)
    for flag in ("--synthetic_options", "--bias_class", "--data_dir", "--dataset"):
        position = flags.index(flag)
        del flags[position : position + 2]
    flags += ["--dataset", dataset, "--data_dir", str(data_dir), "--max_steps", "1", "--cf_warmup_epochs", "0"]
    return flags + ["--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none", *extra]


def test_mtg_jamendo_and_fma_train_and_evaluate(tmp_path):
    from test_next_corpora import JAMENDO_TRACKS, write_fma_tree, write_jamendo_tree

    jamendo = write_jamendo_tree(tmp_path / "jamendo")
    results = training_run.main(
        corpus_flags("mtg_jamendo", jamendo, tmp_path / "out_jamendo", "--mtg_jamendo_subset", "genre")
    )
    assert results["dataset"] == "mtg_jamendo" and results["train_songs"] == 4  # the official split-0
    assert results["eval_songs"] == 2 and results["test_songs"] == 3
    for key in ("eval_song_roc_auc", "test_song_roc_auc", "test_frame_pr_auc"):  # tagging: multi-label scores
        assert np.isfinite(results[key]), key
    saved = json.loads((tmp_path / "out_jamendo" / "config.json").read_text())
    genres = sorted({tag.split("---")[1] for _, tags in JAMENDO_TRACKS.values() for tag in tags if "genre" in tag})
    assert saved["problem_type"] == "multi_label_classification" and sorted(saved["label2id"]) == genres

    fma = write_fma_tree(tmp_path / "fma")
    results = training_run.main(corpus_flags("fma", fma, tmp_path / "out_fma", "--fma_size", "medium"))
    assert results["dataset"] == "fma" and results["train_songs"] == 3  # small ⊂ medium: 2 + 1 training tracks
    assert results["test_songs"] == 3 and np.isfinite(results["test_song_accuracy"])
    saved = json.loads((tmp_path / "out_fma" / "config.json").read_text())
    assert saved["problem_type"] == "single_label_classification"  # --fma_labels genre_top, the default
    assert sorted(saved["label2id"]) == ["Electronic", "Experimental", "Rock"]

    # --allow_missing_files reaches both loaders: a listed track absent from disk is refused, or skipped when allowed.
    (jamendo / "07" / "1807.mp3").unlink()
    (fma / "fma_small" / "001" / "001025.mp3").unlink()
    for dataset, data_dir, missing in (("mtg_jamendo", jamendo, "track_0001807"), ("fma", fma, "001025")):
        data_args = genremert.DataTrainingArguments(dataset=dataset, data_dir=str(data_dir))
        with pytest.raises(genremert.BadAudioFilesError, match=r"not on disk"):
            preparation.load_songs(data_args, seed=0)
        data_args.allow_missing_files = True
        with pytest.warns(UserWarning, match="missing"):
            songs = preparation.load_songs(data_args, seed=0)
        assert missing not in songs["test"]["song_id"] and len(songs["test"]) >= 1


def test_corpus_flags_are_checked_naming_the_flag(tmp_path):
    def data_args(**values):
        return genremert.DataTrainingArguments(data_dir=str(tmp_path), **values)

    assert arguments.DEFAULT_SPLITS["mtg_jamendo"] == "0" and arguments.DEFAULT_SPLITS["fma"] == "official"
    for values, message in [
        (
            {"dataset": "fma", "fma_size": "huge"},
            "--fma_size must be one of ['small', 'medium', 'large', 'full'], got 'huge'.",
        ),
        (
            {"dataset": "fma", "fma_labels": "genre"},
            "--fma_labels must be one of ['genre_top', 'genres', 'genres_all']",
        ),
        ({"dataset": "mtg_jamendo", "mtg_jamendo_subset": "mood"}, "--mtg_jamendo_subset must be one of ['top50', "),
        (
            {"dataset": "fma", "mtg_jamendo_subset": "genre"},
            "--mtg_jamendo_subset only applies to --dataset mtg_jamendo",
        ),
        ({"dataset": "gtzan", "fma_size": "small"}, "--fma_size only applies to --dataset fma, not --dataset gtzan."),
        ({"dataset": "mtg_jamendo", "split": "album"}, "--split 'album' is not an official MTG-Jamendo split"),
        ({"dataset": "fma", "split": "random"}, "--split 'random': FMA has one split; expected one of ['official']."),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            data_args(**values)
    for dataset, what in (("mtg_jamendo", "NN/<track>.mp3"), ("fma", "fma_metadata/ and fma_<size>/")):
        with pytest.raises(ValueError, match=re.escape(f"--data_dir is required for --dataset {dataset} (")) as error:
            genremert.DataTrainingArguments(dataset=dataset)
        assert what in str(error.value)
    assert data_args(dataset="mtg_jamendo", split="split-3").split == "split-3"
    with pytest.raises(SystemExit):  # the parser's own choices: argparse names the flag and the choices
        arguments.parse_arguments(["--dataset", "fma", "--data_dir", str(tmp_path), "--fma_size", "huge"])
