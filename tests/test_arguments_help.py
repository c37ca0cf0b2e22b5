"""`run_classification.py --help` leads with what this project adds: the model, data, LCA (the λ weights of Eq. 1,
the warm-up cf_warmup_epochs) and frozen-backbone flags come before the Trainer's many flags, every default is shown,
and every preset of configs/ is listed with one line derived from its own values."""

import json
from pathlib import Path

import pytest

import run_classification
from genremert.training import arguments, cli_help


REPO = Path(__file__).resolve().parent.parent
PRESETS = sorted((REPO / "configs").glob("*.json"))


@pytest.fixture(scope="module")
def help_text():
    return arguments.build_parser().format_help()


def test_project_flags_come_before_the_trainer_flags(help_text):
    trainer_flag = help_text.index("--per_device_train_batch_size")
    for flag in (
        "--model_type",
        "--counterfactual",
        "--dataset ",
        "--mtg_jamendo_subset",
        "--fma_size",
        "--lambda_ce_main",
        "--lambda_effect",
        "--lambda_ce_cf",
        "--lambda_ent_cf",
        "--lambda_ent_main",
        "--lambda_att",
        "--cf_warmup_epochs",
        "--backbone_dtype",
        "--backbone_cache ",
        "--backbone_cache_dir",
    ):
        assert help_text.index(flag) < trainer_flag, flag
    titles = ["\nmodel:", "\ndata:", "\nLCA (paper Eq. 1", "\nfrozen backbone (GenreMERT", "\nTrainer (transformers"]
    positions = [help_text.index(title) for title in titles]
    assert positions == sorted(positions)  # groups in this order, the Trainer's last


def test_defaults_are_shown_and_the_switches_named(help_text):
    flat = " ".join(help_text.split())
    backbone_cache = flat[flat.index("--backbone_cache {auto,off}") : flat.index("--backbone_cache_dir BACKBONE")]
    assert "(default: off)" in backbone_cache and "'off' to run the backbone every epoch" in backbone_cache
    backbone_dtype = flat[flat.index("--backbone_dtype {auto,float32,bfloat16}") : flat.index("--backbone_cache {")]
    assert "(default: float32)" in backbone_dtype and "avx512_bf16" in backbone_dtype
    warmup = flat[flat.index("--cf_warmup_epochs CF_WARMUP_EPOCHS") : flat.index("--cf_warmup_mode")]
    assert "(default: 0)" in warmup


def test_every_preset_is_listed_with_its_model_dataset_and_lca(help_text):
    epilog = help_text[help_text.index("presets (") :]
    listed = {line.split()[0]: line for line in epilog.splitlines()[1:] if line.strip()}
    assert sorted(listed) == [path.stem for path in PRESETS]
    for path in PRESETS:
        values = json.loads(path.read_text(encoding="utf-8"))
        line = listed[path.stem]
        assert f"{values['model_type']} · {values['dataset']} · " in line, line
        assert ("· LCA ·" in line) == (values["counterfactual"] == "learned"), line
        assert values["_description"] in line, line
        if values["model_type"] == "genremert":  # the presets' frozen-backbone defaults, visible here
            assert "backbone cache auto, dtype auto" in line, line


def test_the_script_prints_the_same_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_classification.cli(["--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert printed.index("--lambda_att") < printed.index("--per_device_train_batch_size")
    assert all(path.stem in printed for path in PRESETS)


def test_preset_notes_are_not_flags_and_a_broken_preset_keeps_help_working(tmp_path):
    preset = tmp_path / "mine.json"
    preset.write_text(json.dumps({"_description": "a note", "_author": "me", "dataset": "synthetic"}))
    _, data_args, _ = arguments.parse_arguments([str(preset), "--output_dir", str(tmp_path / "out")])
    assert data_args.dataset == "synthetic"
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    epilog = cli_help.presets_epilog(tmp_path).splitlines()
    assert epilog[1].split()[:2] == ["broken", "unreadable"]
    assert epilog[2].split()[0] == "list" and "not a JSON object" in epilog[2]
    assert epilog[3].split() == ["mine", "crnn_fgnl", "·", "synthetic", "·", "no", "LCA", "·", "a", "note"]
    assert cli_help.presets_epilog(tmp_path / "absent") == ""  # an installed package without configs/
