"""Trust boundaries (hardening 2, security items): no code from a user's folder runs without `--trust_remote_code`, no
symbolic link is followed out of a published folder, dataset paths stay inside the dataset folder, and archive
extraction never deletes what it did not create. Each test plants the attack itself."""

import io
import json
import os
import tarfile
import threading
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_configs import tiny_crnn_fgnl_config

import genremert
from genremert import CRNNFGNLForAudioClassification, ModelArguments
from genremert.analysis.cli import load_model
from genremert.data import archives
from genremert.data.your_data import load_dataset_songs
from genremert.publishing import hub_upload
from genremert.training.preparation import load_or_build_model


LABELS = ["a", "b"]
# Folder code that leaves a trace when it is imported: the attack of security item 1.
PLANTED_CODE = """
import pathlib
pathlib.Path(MARKER).write_text("the folder's code ran")
from transformers import PretrainedConfig


class PlantedConfig(PretrainedConfig):
    model_type = "planted_type"
"""


def _plant_foreign_model(folder):
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "planted_type",
                "auto_map": {
                    "AutoConfig": "configuration_genremert.PlantedConfig",
                    "AutoModelForAudioClassification": "configuration_genremert.PlantedConfig",
                },
            }
        )
    )
    # Transformers runs a copy from its module cache: the marker path is written into the code itself.
    (folder / "configuration_genremert.py").write_text(PLANTED_CODE.replace("MARKER", repr(str(folder / "CODE_RAN"))))
    return folder


def _saved_crnn(folder):
    config = tiny_crnn_fgnl_config(num_labels=2, id2label=dict(enumerate(LABELS)), label2id={"a": 0, "b": 1})
    torch.manual_seed(0)
    CRNNFGNLForAudioClassification(config).save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------------------------------------------------
# 1. Code from a model folder
# ----------------------------------------------------------------------------------------------------------------------


def test_a_foreign_model_folder_is_refused_before_its_code_runs(tmp_path):
    folder = _plant_foreign_model(tmp_path / "planted")
    arguments = ModelArguments(model_type="crnn_fgnl", model_name_or_path=str(folder))
    with pytest.raises(ValueError, match=r"--model_name_or_path .*planted.*--trust_remote_code"):
        load_or_build_model(arguments, LABELS, None)
    assert not (folder / "CODE_RAN").exists()
    with pytest.raises(ValueError, match=r"--model_dir .*--trust_remote_code"):
        load_model(folder)
    assert not (folder / "CODE_RAN").exists()


def test_the_training_script_refuses_it_too_without_running_it(tmp_path):
    from genremert.training import run

    folder = _plant_foreign_model(tmp_path / "planted")
    flags = ["--model_type", "crnn_fgnl", "--model_name_or_path", str(folder), "--dataset", "synthetic"]
    flags += ["--output_dir", str(tmp_path / "out"), "--do_train", "--num_train_epochs", "1"]
    with pytest.raises(ValueError, match="--trust_remote_code"):
        run.main(flags)
    assert not (folder / "CODE_RAN").exists()


def test_only_an_explicit_opt_in_runs_folder_code(tmp_path):
    folder = _plant_foreign_model(tmp_path / "planted")
    arguments = ModelArguments(model_type="crnn_fgnl", model_name_or_path=str(folder), trust_remote_code=True)
    with pytest.raises(ValueError, match="holds a 'planted_type' model"):
        load_or_build_model(arguments, LABELS, None)
    assert (folder / "CODE_RAN").exists()  # the user asked for it: the flag really is the switch


def test_our_own_model_type_never_runs_the_folders_code_files(tmp_path):
    folder = _saved_crnn(tmp_path / "ours")
    assert "auto_map" in json.loads((folder / "config.json").read_text())
    for name in ("configuration_genremert.py", "modeling_crnn_fgnl.py", "modeling_lca_genremert.py"):
        with open(folder / name, "a", encoding="utf-8") as handle:
            marker = repr(str(folder / f"CODE_RAN_{name}"))
            handle.write(f"\nimport pathlib\npathlib.Path({marker}).write_text('x')\n")
    model = load_or_build_model(ModelArguments(model_type="crnn_fgnl", model_name_or_path=str(folder)), LABELS, None)
    assert type(model) is CRNNFGNLForAudioClassification
    assert type(load_model(folder)) is CRNNFGNLForAudioClassification
    assert not list(folder.glob("CODE_RAN*"))


def test_the_flag_is_documented_in_every_script_that_loads_a_users_model():
    from genremert.analysis import cli, robustness
    from genremert.training.arguments import build_parser

    assert "--trust_remote_code" in build_parser().format_help()
    for module in (cli, robustness):
        with pytest.raises(SystemExit), pytest.MonkeyPatch.context() as patch:
            patch.setattr("sys.argv", ["x", "--help"])
            output = io.StringIO()
            patch.setattr("sys.stdout", output)
            module.main(["--help"])
        assert "--trust_remote_code" in output.getvalue()


# ----------------------------------------------------------------------------------------------------------------------
# 2. Links out of a published folder
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("link_name", ["leak_results.json", "confusion_matrix_test_song.png", "run_args.json"])
def test_a_linked_secret_is_never_exported(tmp_path, link_name):
    secret = tmp_path / "credentials.json"
    secret.write_text(json.dumps({"token": "hf_SECRET_TOKEN_VALUE"}))
    output_dir = _saved_crnn(tmp_path / "run")
    (output_dir / "all_results.json").write_text(json.dumps({"test_song_accuracy": 0.5}))
    os.symlink(secret, output_dir / link_name)
    export_dir = tmp_path / "export"
    with pytest.raises(hub_upload.ExportError, match=rf"{link_name} → .*credentials.json"):
        hub_upload.export_for_hub(output_dir, export_dir, "someone/x", check_pipeline=False)
    exported = [p for p in tmp_path.rglob("*") if p.is_file() and "export" in p.parts]
    assert not any("hf_SECRET_TOKEN_VALUE" in p.read_text(errors="ignore") for p in exported)


def test_the_export_check_refuses_a_link_inside_the_export_folder(tmp_path):
    from genremert.publishing.export_checks import ExportError, check_export_contents

    (tmp_path / "secret.txt").write_text("secret")
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "README.md").write_text("card")
    os.symlink(tmp_path / "secret.txt", folder / "eval_results.json")
    with pytest.raises(ExportError, match=r"eval_results.json: a symbolic link"):
        check_export_contents(folder)


# ----------------------------------------------------------------------------------------------------------------------
# 3. Dataset paths
# ----------------------------------------------------------------------------------------------------------------------


def _wav(path, seconds=1.0, rate=16000, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate)).astype("float32"), rate)


def _csv_dataset(root, rows):
    root.mkdir(parents=True, exist_ok=True)
    lines = ["file_name,label"] + [f"{name},{label}" for name, label in rows]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")


def test_a_relative_path_is_read_beside_the_metadata_never_from_the_current_directory(tmp_path, monkeypatch):
    root = tmp_path / "dataset"
    for i in range(6):
        _wav(root / f"a{i}.wav", seed=i)
    _csv_dataset(root, [(f"a{i}.wav", "x" if i % 2 else "y") for i in range(6)])
    elsewhere = tmp_path / "cwd"
    _wav(elsewhere / "a0.wav", seconds=3.0, seed=99)  # an unrelated file of the same name
    monkeypatch.chdir(elsewhere)
    songs = load_dataset_songs(str(root), audio_dir=tmp_path / "embedded", split_fractions=(0.34, 0.33, 0.33))
    paths = [path for split in songs.values() for path in split["audio"]]
    assert all(path.startswith(str(root)) for path in paths), paths


@pytest.mark.parametrize("bad", ["../outside/x.wav", "ABSOLUTE"])
def test_a_path_leaving_the_dataset_folder_is_refused_naming_row_and_path(tmp_path, bad):
    root = tmp_path / "dataset"
    outside = tmp_path / "outside" / "x.wav"
    _wav(outside)
    for i in range(6):
        _wav(root / f"a{i}.wav", seed=i)
    bad = str(outside) if bad == "ABSOLUTE" else bad
    _csv_dataset(root, [(f"a{i}.wav", "x" if i % 2 else "y") for i in range(6)] + [(bad, "x")])
    with pytest.raises(genremert.BadAudioFilesError, match=r"train\[6\].*outside the dataset folder.*allow_paths"):
        load_dataset_songs(str(root), audio_dir=tmp_path / "embedded", split_fractions=(0.34, 0.33, 0.33))
    songs = load_dataset_songs(
        str(root), audio_dir=tmp_path / "embedded", split_fractions=(0.34, 0.33, 0.33), allow_outside_paths=True
    )
    assert sum(split.num_rows for split in songs.values()) == 7


def test_the_training_flag_reaches_the_loader():
    from genremert.training.arguments import DataTrainingArguments

    assert DataTrainingArguments(dataset="custom", dataset_name="x").allow_paths_outside_dataset is False


# ----------------------------------------------------------------------------------------------------------------------
# 4. Archives
# ----------------------------------------------------------------------------------------------------------------------


def _tar(path, members):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_extraction_never_deletes_a_folder_it_did_not_create(tmp_path):
    archive = _tar(tmp_path / "genres.tar.gz", {"genres/blues/blues.00000.wav": b"x" * 10})
    target = archives.extracted_folder(archive)
    target.mkdir()
    (target / "my_notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match=r"genres.tar.gz.extracted exists .* refusing to overwrite or delete"):
        archives.extract_archive(archive, target)
    assert (target / "my_notes.txt").read_text() == "precious"
    target.joinpath("my_notes.txt").unlink()  # an empty folder is taken
    assert (archives.extract_archive(archive, target) / "genres/blues/blues.00000.wav").is_file()


def test_a_zip_bomb_is_stopped_naming_the_member(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("small.txt", b"ok")
        archive.writestr("huge.bin", b"\x00" * (3 * 1024 * 1024))  # ≈ 300×+ compression
    assert bomb.stat().st_size * 100 < 3 * 1024 * 1024
    with pytest.raises(archives.UnsafeArchiveError, match=r"member 'huge.bin' expands the archive beyond"):
        archives.extract_archive(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial-*"))
    assert (archives.extract_archive(bomb, tmp_path / "out", max_ratio=10_000) / "huge.bin").stat().st_size > 0


def test_a_file_and_a_folder_of_one_name_are_refused_clearly(tmp_path):
    clash = tmp_path / "clash.zip"
    with zipfile.ZipFile(clash, "w") as archive:
        archive.writestr("a", b"file")
        archive.writestr("a/b.wav", b"inside")
    with pytest.raises(archives.UnsafeArchiveError, match=r"member 'a' is a file, and other members use 'a'"):
        archives.extract_archive(clash, tmp_path / "out")


@pytest.mark.parametrize("kind", ["truncated", "not_an_archive", "lying_size"])
def test_damaged_archives_name_the_file(tmp_path, kind):
    path = tmp_path / "genres.tar.gz"
    if kind == "not_an_archive":
        path.write_bytes(b"<html>404 not found</html>")
    else:
        _tar(path, {"genres/blues/blues.00000.wav": os.urandom(200_000)})
        data = path.read_bytes()
        if kind == "truncated":
            path.write_bytes(data[: len(data) // 2])
        else:  # a header claiming 400 kB, followed by 200 kB of data
            import gzip

            member = tarfile.TarInfo("genres/blues/blues.00000.wav")
            member.size = 400_000
            path.write_bytes(gzip.compress(member.tobuf() + os.urandom(200_000) + bytes(1024)))
    with pytest.raises(archives.DamagedArchiveError, match=r"genres.tar.gz"):
        archives.extract_archive(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_two_processes_extracting_one_archive_both_succeed(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", {f"genres/x/{i}.wav": os.urandom(50_000) for i in range(20)})
    target = tmp_path / "a.tar.gz.extracted"
    results, errors = [], []

    def extract():
        try:
            results.append(archives.extract_archive(archive, target))
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)

    threads = [threading.Thread(target=extract) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert results == [target] * 3 and len(list(target.rglob("*.wav"))) == 20
    assert not list(tmp_path.glob("*.partial-*"))


# ----------------------------------------------------------------------------------------------------------------------
# A config whose labels have a gap
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", ["crnn_fgnl", "genremert", "self_attention_tagger"])
def test_id2label_with_a_gap_is_refused_in_the_config(tmp_path, make):
    import tiny_configs

    build = getattr(tiny_configs, f"tiny_{make}_config")
    with pytest.raises(ValueError, match=r"`id2label` must have the keys 0 … 2 .* got \[0, 1, 5\]"):
        build(num_labels=3, id2label={0: "a", 1: "b", 5: "c"})
    folder = tmp_path / "gap"
    build(num_labels=3).save_pretrained(folder)  # a hand-edited config.json with a gap is refused on load
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "5": "c"}
    (folder / "config.json").write_text(json.dumps(config))
    from transformers import AutoConfig

    with pytest.raises(ValueError, match="no gap"):
        AutoConfig.from_pretrained(folder)
