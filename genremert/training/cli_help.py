"""How `run_classification.py --help` reads: the launch forms first, then the model, data, LCA and frozen-backbone
flags in their own groups before the generic Trainer flags, every default shown, and at the end the presets
(`configs/*.json`), one line each derived from the preset's own values (model, dataset, LCA or not, epochs, the frozen
backbone's settings) plus its `_description`, so that the list cannot drift from the files. Keys starting with `_` are
notes for people, never flags."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


DESCRIPTION = """Train and evaluate GenreMERT or CRNN_FGNL, plain or with learnable counterfactual attention (LCA).

  python run_classification.py configs/crnn_fgnl_lca_artist20_5s.json --data_dir /data/artist20   # a preset
  python run_classification.py --model_type crnn_fgnl --dataset synthetic --counterfactual learned \\
      --num_train_epochs 6 --output_dir outputs/x --do_train --do_eval --do_predict

The first argument may be a JSON preset (configs/*.json, listed at the end); flags after it override its values. The
model, data, LCA and frozen-backbone flags come first below; the generic Trainer flags (TrainingArguments) follow.
Docs: docs/training.md."""

# The flags of LCATrainingArguments itself (not TrainingArguments'): listed right after the model and data flags.
LCA_FLAGS = (
    "lambda_ce_main",
    "lambda_effect",
    "lambda_ce_cf",
    "lambda_ent_cf",
    "lambda_ent_main",
    "lambda_att",
    "cf_warmup_epochs",
    "cf_warmup_mode",
    "effect_type",
    "evaluate_counterfactual",
    "log_lca_gradients",
    "overwrite_output_dir",
)
# How the frozen backbone runs (precision, feature cache) and the evaluation's precision: their own group after LCA's.
BACKBONE_FLAGS = ("backbone_dtype", "backbone_cache", "backbone_cache_dir", "backbone_cache_dtype", "eval_autocast")

# configs/ sits beside the scripts at the top of the repository (it is not installed with the package).
PRESETS_DIR = Path(__file__).resolve().parents[2] / "configs"
COUNTERFACTUAL_WORDS = {"learned": "LCA", "random": "CAL", "none": "no LCA"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description and the preset list as written (launch commands keep their lines), and every flag's default
    after its help."""


def is_note(key: str) -> bool:
    """A preset key that is a note for people (`_description`), not a flag."""
    return key.startswith("_")


def preset_summary(values: dict) -> str:
    """One line of what a preset runs, from its values: e.g. `genremert · gtzan · LCA · 300 epochs · backbone cache
    auto, dtype auto · <its _description>`."""
    counterfactual = str(values.get("counterfactual", "none"))
    parts = [
        str(values.get("model_type", "crnn_fgnl")),
        str(values.get("dataset", "synthetic")),
        COUNTERFACTUAL_WORDS.get(counterfactual, counterfactual),
    ]
    if "num_train_epochs" in values:
        parts.append(f"{values['num_train_epochs']} epochs")
    if "backbone_cache" in values or "backbone_dtype" in values:
        parts.append(
            f"backbone cache {values.get('backbone_cache', 'off')}, dtype {values.get('backbone_dtype', 'float32')}"
        )
    if values.get("_description"):
        parts.append(str(values["_description"]))
    return " · ".join(parts)


def presets_epilog(folder: Path = PRESETS_DIR) -> str:
    """The `--help` epilog: every preset of `folder` with its one-line summary (empty when there is no folder, as in an
    installed package without the scripts)."""
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        return ""
    width = max(len(path.stem) for path in paths)
    lines = [f"presets ({folder}; run one with `run_classification.py {folder.name}/<name>.json [--flag value ...]`):"]
    for path in paths:
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            summary = preset_summary(values) if isinstance(values, dict) else "not a JSON object of flags"
        except (OSError, ValueError) as error:  # --help still works with a broken preset, and names it
            summary = f"unreadable ({error})"
        lines.append(f"  {path.stem:<{width}}  {summary}")
    return "\n".join(lines)


def arrange_help(parser: argparse.ArgumentParser, model_flags: set[str], data_flags: set[str]) -> None:
    """Moves the flags out of HfArgumentParser's one group into the groups model, data, LCA and frozen backbone, put
    before the Trainer's own flags, and gives each `--no_*` switch a help of its own."""
    groups = {
        "model": model_flags,
        "data": data_flags,
        "LCA (paper Eq. 1: the λ weights, the two-step schedule cf_warmup_epochs; the output folder)": set(LCA_FLAGS),
        "frozen backbone (GenreMERT: its precision, its feature cache) and evaluation precision": set(BACKBONE_FLAGS),
    }
    generic = next(group for group in parser._action_groups if group.title in ("options", "optional arguments"))
    generic.title = "Trainer (transformers.TrainingArguments)"
    new_groups = []
    for title, names in groups.items():
        group = parser.add_argument_group(title)
        parser._action_groups.remove(group)
        for action in list(generic._group_actions):
            if action.dest in names:
                generic._group_actions.remove(action)
                group._group_actions.append(action)
        new_groups.append(group)
    position = parser._action_groups.index(generic)
    parser._action_groups[position:position] = new_groups
    for action in parser._actions:
        if action.option_strings and all(option.startswith(("--no_", "--no-")) for option in action.option_strings):
            positive = action.option_strings[0].replace("--no_", "--", 1)
            action.help = f"Turn {positive} off (it is on by default)."
