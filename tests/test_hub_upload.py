"""hub_upload.py: export of a tiny trained model for the Hub, its verification, the card, and the upload (against a
local stand-in for the Hub API: nothing here touches the network)."""

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config

from genremert import CRNNFGNLForAudioClassification, GenreMERTForAudioClassification
from genremert.publishing import hub_upload


HUB_UPLOAD_SCRIPT = Path(__file__).resolve().parent.parent / "hub_upload.py"  # the command line users run
LABELS = ["blues", "jazz", "rock"]
METRICS = {
    "test_frame_accuracy": 0.5,
    "test_frame_f1": 0.4,
    "test_song_accuracy": 0.75,
    "test_song_f1": 0.7,
    "eval_song_accuracy": 0.8,
    "train_runtime": 12.5,
    "dataset": "gtzan",
}
RUN_ARGS = {
    "dataset": "gtzan",
    "counterfactual": "learned",
    "lambda_ce_main": 0.7,
    "lambda_effect": 1.0,
    "lambda_ent_cf": 2.0,
    "cf_warmup_epochs": 20,
    "learning_rate": 1e-4,
}


def train_briefly(model, steps=4, seed=0):
    """A few Adam steps on random slices with the main and counterfactual cross-entropy: a (tiny) trained model."""
    generator = torch.Generator().manual_seed(seed)
    num_samples = int(model.config.sampling_rate * model.config.slice_seconds)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        input_values = 0.1 * torch.randn(4, num_samples, generator=generator)
        labels = torch.randint(0, model.config.num_labels, (4,), generator=generator)
        outputs = model(input_values, labels=labels)
        loss = outputs.loss + torch.nn.functional.cross_entropy(outputs.counterfactual_logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def write_training_output(folder, model):
    """What run_classification.py leaves in its output folder, including a pickle that must never be published."""
    model.save_pretrained(folder)
    (folder / "all_results.json").write_text(json.dumps(METRICS))
    (folder / "run_args.json").write_text(json.dumps(RUN_ARGS))
    with open(folder / "training_args.bin", "wb") as handle:
        pickle.dump({"learning_rate": 1e-4}, handle)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(3, 3), dpi=50)
    plt.imshow(np.eye(3))
    figure.savefig(folder / "confusion_matrix_test_song.png")
    plt.close(figure)
    (folder / "confusion_matrix_test_song.json").write_text(
        json.dumps({"labels": LABELS, "matrix": np.eye(3).tolist()})
    )
    (folder / "checkpoint-8").mkdir()
    torch.save({"step": 8}, folder / "checkpoint-8" / "optimizer.pt")
    (folder / "runs").mkdir()
    (folder / "runs" / "events.out.tfevents.1").write_bytes(b"\x00" * 16)
    return folder


def labelled(config):
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {name: index for index, name in enumerate(LABELS)}
    return config


class RecordingHubApi:
    """Stand-in for `huggingface_hub.HfApi`: records the calls and the files present at upload time; can fail."""

    def __init__(self, fail_upload=False):
        self.calls = []
        self.fail_upload = fail_upload

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        from pathlib import Path

        folder = Path(kwargs["folder_path"])
        kwargs["files"] = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        if self.fail_upload:
            raise ConnectionError("connection reset by peer")
        return "https://huggingface.co/stand-in/commit/0123"


# Tiny models on a shared 2-core machine: one thread per process is much faster than two contended ones.
ONE_THREAD_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
ONE_THREAD_ENV.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny GenreMERT trained with its counterfactual branch, and its training output folder."""
    torch.manual_seed(0)
    model = train_briefly(GenreMERTForAudioClassification(labelled(tiny_genremert_config(counterfactual="learned"))))
    folder = write_training_output(tmp_path_factory.mktemp("training_output"), model)
    return model, folder


@pytest.fixture(scope="module")
def dry_run(trained, tmp_path_factory):
    """`python hub_upload.py --dry_run` run as a user would, in its own process."""
    _, output_dir = trained
    export_dir = tmp_path_factory.mktemp("export") / "tiny-genremert"
    completed = subprocess.run(
        [
            sys.executable,
            str(HUB_UPLOAD_SCRIPT),
            "--output_dir",
            str(output_dir),
            "--repo_id",
            "someone/tiny-genremert",
            "--export_dir",
            str(export_dir),
            "--dry_run",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=ONE_THREAD_ENV,
    )
    return completed, export_dir


FRESH_LOAD = textwrap.dedent(
    """
    import json, sys

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"modeling_genremert", "configuration_genremert", "pipeline_genremert"}:
                raise ModuleNotFoundError(name)

    sys.meta_path.insert(0, Blocker())
    import torch
    from transformers import AutoModelForAudioClassification

    model = AutoModelForAudioClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(torch.load(sys.argv[2], weights_only=True)).logits
    print(json.dumps({"module": type(model).__module__, "parameters": model.num_parameters(),
                      "logits": logits.tolist()}))
    """
)


def test_dry_run_writes_a_folder_that_loads_alone_with_trust_remote_code(trained, dry_run, tmp_path):
    model, _ = trained
    completed, export_dir = dry_run
    assert completed.returncode == 0, completed.stderr
    assert "Dry run: nothing was uploaded." in completed.stdout and str(export_dir) in completed.stdout

    input_values = 0.1 * torch.randn(2, model.config.sampling_rate, generator=torch.Generator().manual_seed(5))
    torch.save(input_values, tmp_path / "inputs.pt")
    script = tmp_path / "fresh_load.py"
    script.write_text(FRESH_LOAD)
    loaded = subprocess.run(
        [sys.executable, str(script), str(export_dir), str(tmp_path / "inputs.pt")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=ONE_THREAD_ENV,
    )
    assert loaded.returncode == 0, loaded.stderr
    report = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules")
    plain = GenreMERTForAudioClassification(labelled(tiny_genremert_config()))
    assert report["parameters"] == plain.num_parameters() < model.num_parameters()
    with torch.no_grad():
        expected = model.eval()(input_values).logits
    torch.testing.assert_close(torch.tensor(report["logits"]), expected, rtol=1e-5, atol=1e-6)


def test_export_holds_the_right_files_and_no_pickle(dry_run):
    _, export_dir = dry_run
    files = {str(path.relative_to(export_dir)) for path in export_dir.rglob("*") if path.is_file()}
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "README.md",
        "configuration_genremert.py",
        "modeling_genremert.py",
        "pipeline_genremert.py",
        "all_results.json",
        "confusion_matrix_test_song.png",
        "confusion_matrix_test_song.json",
    } <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl", ".ckpt", ".pth")) for name in files), files
    assert not any(name.startswith(("checkpoint-", "runs")) for name in files), files
    assert hub_upload.find_pickle_files(export_dir) == []
    config = json.loads((export_dir / "config.json").read_text())
    assert config["counterfactual"] == "none"
    assert config["auto_map"]["AutoModelForAudioClassification"] == "modeling_genremert.GenreMERTForAudioClassification"


def test_card_parses_as_hub_metadata_with_the_run_metrics(dry_run):
    from huggingface_hub import ModelCard, metadata_load

    _, export_dir = dry_run
    metadata = metadata_load(export_dir / "README.md")
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "audio-classification"
    assert metadata["license"] == "cc-by-nc-4.0"  # MERT's licence binds GenreMERT
    assert metadata["datasets"] == ["marsyas/gtzan"]
    assert "learnable-counterfactual-attention" in metadata["tags"]

    card = ModelCard.load(export_dir / "README.md")
    results = {(result.metric_name, result.dataset_split): result.metric_value for result in card.data.eval_results}
    assert results == {
        ("Frame-level accuracy", "test"): 0.5,
        ("Frame-level F1 (weighted)", "test"): 0.4,
        ("Song-level accuracy", "test"): 0.75,
        ("Song-level F1 (weighted)", "test"): 0.7,
    }
    text = card.text
    assert 'pipeline("audio-classification", model="someone/tiny-genremert", trust_remote_code=True)' in text
    assert "| `lambda_ent_cf` | 2.0000 |" in text and "| `cf_warmup_epochs` | 20 |" in text
    assert "![confusion matrix test song](confusion_matrix_test_song.png)" in text
    assert "`blues`, `jazz`, `rock`" in text
    assert "| `test` | 0.5000 | 0.4000 | 0.7500 | 0.7000 |" in text  # one row per split
    assert "| `eval` |  |  | 0.8000 |  |" in text
    assert "train_runtime" not in text  # throughput numbers are not results


def test_upload_makes_one_commit_with_the_right_repo_and_revision(trained, dry_run):
    _, export_dir = dry_run
    api = RecordingHubApi()
    commit = hub_upload.upload_to_hub(export_dir, "someone/tiny-genremert", api, private=True, revision="v1")
    assert commit == "https://huggingface.co/stand-in/commit/0123"
    assert [call[0] for call in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][1:] == ("someone/tiny-genremert", {"repo_type": "model", "private": True, "exist_ok": True})
    assert api.calls[1][2]["branch"] == "v1" and api.calls[1][2]["exist_ok"] is True
    upload = api.calls[2][2]
    assert upload["repo_id"] == "someone/tiny-genremert" and upload["revision"] == "v1"
    assert upload["repo_type"] == "model" and upload["folder_path"] == str(export_dir)
    assert "model.safetensors" in upload["files"] and "README.md" in upload["files"]
    assert not any(name.endswith((".bin", ".pkl", ".pt")) for name in upload["files"])


def test_failed_upload_says_what_happened_and_a_rerun_fixes_it(dry_run):
    _, export_dir = dry_run
    failing = RecordingHubApi(fail_upload=True)
    with pytest.raises(hub_upload.HubUploadError) as raised:
        hub_upload.upload_to_hub(export_dir, "someone/tiny-genremert", failing)
    message = str(raised.value)
    assert "someone/tiny-genremert (revision main)" in message and "connection reset by peer" in message
    assert "No model files were published" in message and "run the same command again" in message
    assert [call[0] for call in failing.calls] == ["create_repo", "upload_folder"]  # one commit, never partial
    assert (export_dir / "model.safetensors").is_file()  # the verified folder is kept for the rerun

    working = RecordingHubApi()
    hub_upload.upload_to_hub(export_dir, "someone/tiny-genremert", working)
    assert working.calls[-1][2]["files"] == failing.calls[-1][2]["files"]


def test_pickles_and_bad_repo_ids_are_refused_before_any_call(dry_run, tmp_path):
    import shutil

    _, export_dir = dry_run
    tampered = tmp_path / "tampered"
    shutil.copytree(export_dir, tampered)
    (tampered / "notes.json").write_bytes(pickle.dumps({"a": 1}))  # pickle bytes behind a harmless name
    api = RecordingHubApi()
    with pytest.raises(hub_upload.ExportError, match="notes.json"):
        hub_upload.upload_to_hub(tampered, "someone/tiny-genremert", api)
    with pytest.raises(hub_upload.HubUploadError, match="user_or_org/model_name"):
        hub_upload.upload_to_hub(export_dir, "no-namespace", api)
    assert api.calls == []


def test_protocol_0_pickles_and_unlisted_files_are_caught_by_their_content(dry_run, tmp_path):
    """A protocol-0 pickle has no PROTO header byte: it is caught because a .png must start with the PNG signature."""
    import shutil

    _, export_dir = dry_run
    hub_upload.check_no_pickle(export_dir)  # the real export passes the allow-list and every content check
    for name, payload, reason in [
        ("confusion_matrix_extra.png", pickle.dumps({"a": 1}, protocol=0), "not a PNG image"),
        ("all_results.json", pickle.dumps([1], protocol=0), "not valid JSON"),
        ("model.safetensors", b"\x00" * 4, "not a safetensors file"),
        ("notes.txt", b"hello", "not on the allow-list"),
    ]:
        tampered = tmp_path / name.replace(".", "_")
        shutil.copytree(export_dir, tampered)
        (tampered / name).write_bytes(payload)
        with pytest.raises(hub_upload.ExportError, match=rf"{name}: {reason}"):
            hub_upload.upload_to_hub(tampered, "someone/tiny-genremert", RecordingHubApi())


def test_publish_uploads_only_after_verification(tmp_path):
    """`publish` on a CRNN_FGNL output (batch-norm statistics included): export, verify, then upload; an output
    without safetensors weights fails before the Hub API is ever built."""
    torch.manual_seed(1)
    model = train_briefly(CRNNFGNLForAudioClassification(labelled(tiny_crnn_fgnl_config(counterfactual="learned"))))
    output_dir = write_training_output(tmp_path / "crnn_output", model)
    built = []

    def api_factory(token):
        built.append(token)
        return RecordingHubApi()

    report, commit = hub_upload.publish(
        output_dir,
        "someone/tiny-crnn",
        token="hf_test",
        api_factory=api_factory,
        dataset="artist20",
        check_pipeline=False,
    )
    assert built == ["hf_test"] and commit is not None
    assert report.trained_counterfactual == "learned" and report.max_abs_logit_difference == 0.0
    plain = CRNNFGNLForAudioClassification(labelled(tiny_crnn_fgnl_config()))
    assert report.num_parameters == plain.num_parameters()
    assert report.export_dir == output_dir / "hub_export"
    from huggingface_hub import metadata_load

    metadata = metadata_load(report.export_dir / "README.md")
    assert metadata["license"] == "mit" and "datasets" not in metadata  # artist20 is not a Hub dataset

    pickled_only = tmp_path / "pickled_only"
    pickled_only.mkdir()
    (pickled_only / "config.json").write_text((output_dir / "config.json").read_text())
    torch.save(model.state_dict(), pickled_only / "pytorch_model.bin")
    with pytest.raises(hub_upload.ExportError, match="no model.safetensors"):
        hub_upload.publish(pickled_only, "someone/tiny-crnn", api_factory=api_factory)
    assert built == ["hf_test"]


def test_export_dir_that_is_not_an_export_is_never_overwritten(trained, tmp_path):
    _, output_dir = trained
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(hub_upload.ExportError, match="not a previous export"):
        hub_upload.export_for_hub(output_dir, precious, repo_id="someone/x")
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_verification_catches_different_logits(dry_run):
    _, export_dir = dry_run
    config = json.loads((export_dir / "config.json").read_text())
    inputs = {"input_values": 0.1 * torch.randn(1, config["sampling_rate"], generator=torch.Generator().manual_seed(3))}
    wrong_logits = torch.zeros(1, len(LABELS))
    with pytest.raises(hub_upload.ExportError, match="differ from the trained model"):
        hub_upload.verify_export_folder(export_dir, wrong_logits, inputs, check_pipeline=False)


def test_cli_reports_a_bad_output_folder_clearly(tmp_path, capsys):
    assert hub_upload.main(["--output_dir", str(tmp_path / "nowhere"), "--repo_id", "a/b", "--dry_run"]) == 1
    assert "is not a folder" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "crnn_fgnl", "num_mel_bins": -1}')
    (broken / "model.safetensors").write_bytes(b"")
    assert hub_upload.main(["--output_dir", str(broken), "--repo_id", "a/b", "--dry_run"]) == 1
    error = capsys.readouterr().err
    assert "the model does not load" in error and "num_mel_bins" in error
    assert not (broken / "hub_export").exists()


def test_a_training_folder_with_other_code_is_refused_unless_asked(trained, tmp_path):
    import shutil

    _, output_dir = trained
    drifted = tmp_path / "drifted"
    shutil.copytree(output_dir, drifted)
    with open(drifted / "modeling_genremert.py", "a", encoding="utf-8") as handle:
        handle.write("\n# trained with another version\n")
    with pytest.raises(hub_upload.ExportError, match=r"\['modeling_genremert.py'\] .* differ from this repository"):
        hub_upload.export_for_hub(drifted, tmp_path / "export", "someone/x", check_pipeline=False)
    assert hub_upload.check_code_drift(drifted, allow_code_update=True) == ["modeling_genremert.py"]
    assert hub_upload.check_code_drift(output_dir, allow_code_update=False) == []


# ----------------------------------------------------------------------------------------------------------------------
# --space: a Gradio Space folder for the model repo (its app is run in a browser by tests/test_web_app.py)
# ----------------------------------------------------------------------------------------------------------------------


def test_space_alone_writes_only_the_space_and_a_rerun_replaces_it(tmp_path, capsys):
    space = tmp_path / "space"
    assert hub_upload.main(["--repo_id", "someone/tiny-genremert", "--space", str(space)]) == 0
    output = capsys.readouterr().out
    assert "Wrote the Space of someone/tiny-genremert" in output and "--repo-type space" in output
    app = (space / "app.py").read_text()
    assert "'someone/tiny-genremert'" in app and "from genremert_space.analysis.web_app import" in app
    compile(app, "app.py", "exec")
    assert (space / "genremert_space" / "analysis" / "web_app.py").read_bytes() == (
        Path(hub_upload.__file__).parents[1] / "analysis" / "web_app.py"
    ).read_bytes()
    (space / "stale.txt").write_text("from an older Space")
    assert hub_upload.main(["--repo_id", "someone/other-model", "--space", str(space)]) == 0
    assert not (space / "stale.txt").exists() and "'someone/other-model'" in (space / "app.py").read_text()
    assert not (tmp_path / "space" / "hub_export").exists()  # no model was exported


def test_space_refuses_a_folder_it_did_not_write_and_a_bad_repo_id(tmp_path, capsys):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.md").write_text("mine")
    assert hub_upload.main(["--repo_id", "someone/model", "--space", str(occupied)]) == 1
    assert "is not a Space written by hub_upload.py --space" in capsys.readouterr().err
    assert (occupied / "notes.md").read_text() == "mine"
    assert hub_upload.main(["--repo_id", "not a repo id", "--space", str(tmp_path / "new")]) == 1
    assert "--repo_id must look like 'user_or_org/model_name'" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    with pytest.raises(SystemExit):
        hub_upload.main(["--repo_id", "someone/model"])
    assert "--output_dir is required (or --space DIR alone" in capsys.readouterr().err


def test_space_after_an_export_serves_the_exported_repo(tmp_path, monkeypatch, capsys):
    calls = []

    def exported(output_dir, repo_id, **kwargs):  # the export itself is tested above; here only the order matters
        calls.append((output_dir, repo_id, kwargs["dry_run"]))
        report = hub_upload.ExportReport(tmp_path / "export", [], 1, "GenreMERTForAudioClassification", "none", 0.0)
        return report, None

    monkeypatch.setattr(hub_upload, "publish", exported)
    flags = ["--output_dir", str(tmp_path / "run"), "--repo_id", "someone/model", "--dry_run"]
    assert hub_upload.main([*flags, "--space", str(tmp_path / "space")]) == 0
    assert calls == [(str(tmp_path / "run"), "someone/model", True)]
    assert "'someone/model'" in (tmp_path / "space" / "app.py").read_text()
    assert "Dry run: nothing was uploaded." in capsys.readouterr().out
