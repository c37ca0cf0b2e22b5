"""The arguments of `run_classification.py`: model, data and (in `lca_trainer`) training arguments, as dataclasses
that `HfArgumentParser` reads from flags or from one JSON preset followed by flags."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from configuration_genremert import COUNTERFACTUAL_MODES

from ..registry import MODEL_CLASSES as MODEL_TYPES
from .trainer import LCATrainingArguments


DATASETS = ("gtzan", "artist20", "magnatagatune", "synthetic", "custom")
DEFAULT_SPLITS = {
    "gtzan": "fault_filtered",
    "artist20": "album",
    "magnatagatune": "directory",
    "synthetic": "album",
    "custom": None,
}
# Datasets whose songs carry a list of tags (multi-label tagging: sigmoid outputs, BCE, ROC-AUC / PR-AUC).
TAGGING_DATASETS = ("magnatagatune",)


@dataclass
class ModelArguments:
    """Which model to build or load, and how."""

    model_type: str = field(
        default="crnn_fgnl",
        metadata={
            "help": f"Model to build: {' | '.join(MODEL_TYPES)}.",
            "choices": list(MODEL_TYPES),
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Start from a saved genremert model folder (or Hub id) instead of a new model."},
    )
    finetune: str | None = field(
        default=None,
        metadata={
            "help": "Transfer from --model_name_or_path: 'head' (a new classifier for this dataset's labels, "
            "everything else frozen), 'all' (a new classifier, everything trainable; a frozen backbone stays frozen) "
            "or 'none' (the default: continue training; the checkpoint's labels must be the dataset's).",
            "choices": ["none", "head", "all"],
        },
    )
    backbone_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "GenreMERT only: MERT weights to load into the frozen backbone (Hub id such as "
            "m-a-p/MERT-v1-95M, or a local folder)."
        },
    )
    counterfactual: str = field(
        default="none",
        metadata={
            "help": "Counterfactual attention: none | learned (LCA) | random (CAL).",
            "choices": list(COUNTERFACTUAL_MODES),
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Override config fields of a new model: 'key=value,...' (values parsed as JSON, lists "
            "allowed: 'conv_channels=[4,8,8,8]'; nested: 'backbone_config.hidden_size=32')."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are stored."})
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private weights."})
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run Python code shipped with --model_name_or_path (a folder or Hub id whose model type this "
            "library does not register). Off by default: our own model types never need it; turn it on only for a "
            "source you trust."
        },
    )

    def __post_init__(self):
        if self.finetune not in (None, "none", "head", "all"):
            raise ValueError(f"--finetune must be one of ['none', 'head', 'all'], got {self.finetune!r}.")
        if self.finetune in ("head", "all") and self.model_name_or_path is None:
            raise ValueError(f"--finetune {self.finetune} needs --model_name_or_path (the model to transfer from).")
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"--model_type must be one of {list(MODEL_TYPES)}, got {self.model_type!r}.")
        if self.counterfactual not in COUNTERFACTUAL_MODES:
            raise ValueError(
                f"--counterfactual must be one of {list(COUNTERFACTUAL_MODES)}, got {self.counterfactual!r}."
            )
        if self.backbone_name_or_path is not None and self.model_type != "genremert":
            raise ValueError("--backbone_name_or_path (MERT weights) only applies to --model_type genremert.")
        if self.config_overrides is not None and self.model_name_or_path is not None:
            raise ValueError("--config_overrides builds a new model; it cannot be combined with --model_name_or_path.")


@dataclass
class DataTrainingArguments:
    """Which songs, how they are sliced, and how songs are scored."""

    dataset: str = field(
        default="synthetic",
        metadata={
            "help": f"Dataset: {' | '.join(DATASETS)}.",
            "choices": list(DATASETS),
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Dataset folder, or its .tar.gz/.tgz/.zip archive (extracted once beside it). Required for "
            "artist20 and magnatagatune; optional for gtzan: without it, genres.tar.gz is downloaded from the Hub "
            "dataset marsyas/gtzan into the Hugging Face cache (--gtzan_revision pins a commit). For synthetic: where "
            "the generated audio is cached."
        },
    )
    split: str | None = field(
        default=None,
        metadata={
            "help": "Train/validation/test split of the dataset (default: gtzan 'fault_filtered', artist20 "
            "'album', magnatagatune 'directory', synthetic 'album')."
        },
    )
    allow_missing_files: bool = field(
        default=False,
        metadata={
            "help": "gtzan: train on the songs that are on disk when some songs of the split lists are missing "
            "(refused by default: an incomplete copy usually means a wrong folder)."
        },
    )
    allow_paths_outside_dataset: bool = field(
        default=False,
        metadata={
            "help": "--dataset_name: accept audio paths that lead outside the dataset's folder (absolute paths "
            "elsewhere, ../) or, for a Hub dataset, paths instead of embedded audio. Off by default: a table's paths "
            "are relative to its folder, and a path leaving it is refused naming the row."
        },
    )
    stems_dir: str | None = field(
        default=None,
        metadata={
            "help": "gtzan/artist20: read each song's separated vocals <stems_dir>/<song_id>/vocals.wav "
            "instead of the mix (the paper's vocal-only setting; scripts/separate_vocals.py)."
        },
    )
    slice_seconds: float | None = field(
        default=None,
        metadata={"help": "Slice (frame) length in seconds; default: the model config's slice_seconds."},
    )
    slice_overlap_seconds: float = field(default=0.0, metadata={"help": "Overlap of consecutive slices (seconds)."})
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Use at most this many training *songs* (chosen with --seed), for quick runs."},
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "At most this many validation songs."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "At most this many songs per test split."})
    audio_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Keep decoded, resampled songs here as .npy (faster later epochs and runs). Every song is decoded "
            "once before training, which also checks every sample (bad songs are named up front)."
        },
    )
    synthetic_options: str | None = field(
        default=None,
        metadata={
            "help": "Synthetic dataset: JSON object of load_synthetic arguments, e.g. "
            '\'{"num_classes": 5, "song_seconds": 20}\'.'
        },
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Your own data: a Hub dataset id or a local folder (an audio folder with label sub-folders or a "
            "metadata.csv; parquet/arrow/json/csv files; a save_to_disk folder). Sets --dataset custom."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub revision of --dataset_name."})
    audio_column_name: str = field(default="audio", metadata={"help": "Column of the audio (paths or bytes)."})
    label_column_name: str = field(
        default="label", metadata={"help": "Column of the labels (a ClassLabel, or strings: sorted names)."}
    )
    song_column_name: str | None = field(
        default=None,
        metadata={"help": "Column naming each row's recording: rows that are pieces of one song are scored together."},
    )
    group_column_name: str | None = field(
        default=None, metadata={"help": "Column of the group (album, artist) that must not straddle two splits."}
    )
    train_split_name: str = field(default="train", metadata={"help": "The dataset's training split."})
    validation_split_name: str = field(default="validation", metadata={"help": "The dataset's validation split."})
    test_split_name: str = field(default="test", metadata={"help": "The dataset's test split."})
    split_fractions: str = field(
        default="0.8,0.1,0.1",
        metadata={
            "help": "A dataset with only a train split is split by group, stratified by label, with these fractions "
            "and --split_seed; the split is written to <output_dir>/split.json and reused."
        },
    )
    gtzan_revision: str | None = field(
        default=None,
        metadata={"help": "--dataset gtzan without --data_dir: the revision (commit) of marsyas/gtzan to download."},
    )
    split_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the train/validation/test split (artist20 albums, gtzan 'random') and of the "
            "--max_*_samples subsets. Separate from --seed so that runs with other training seeds share one test set."
        },
    )
    bias_class: str | None = field(
        default=None,
        metadata={
            "help": "The shortcut protocol of paper Fig. 1. Synthetic: the class id whose training songs carry the "
            "benchmark's band noise. Any other dataset: a class name (or id) whose training and validation songs get "
            "band noise (--bias_band_hz, --bias_snr_db); evaluated on the clean test set and on test_noisy (the noise "
            "added to every class), with the shortcut metrics of the demo."
        },
    )
    bias_band_hz: str = field(
        default="3000,5000",
        metadata={"help": "Band of the --bias_class noise in Hz, 'low,high' (paper Fig. 1: 3–5 kHz)."},
    )
    bias_snr_db: float = field(
        default=15.0,
        metadata={"help": "Signal-to-noise ratio of the --bias_class noise in dB (song RMS over noise RMS)."},
    )
    feature_store: str | None = field(
        default=None,
        metadata={
            "help": "GenreMERT: train and evaluate the head on the backbone hidden states of this feature store "
            "(made by extract_features.py with this run's model and dataset flags); the backbone never runs. The "
            "store's backbone, layers, sampling rate and slicing must match the model's (refused otherwise)."
        },
    )
    node_local_storage: bool = field(
        default=False,
        metadata={
            "help": "Multi-node runs: --data_dir, --audio_cache_dir and the output folder are on each node's own disk, "
            "so each node prepares them (its local main process first). Off (the default): one shared filesystem, "
            "prepared once per run by the global main process while the others wait."
        },
    )
    break_stale_lock: bool = field(
        default=False,
        metadata={
            "help": "Take over the --output_dir lock of a run on another host that is gone (a crashed node): the "
            "lock names its host and process, which cannot be checked from here. Without it, such a lock is taken "
            "over only once it has not been refreshed for 10 minutes (runs refresh it every 30 s)."
        },
    )
    vote_threshold: str = field(
        default="auto",
        metadata={
            "help": "Song vote confidence threshold: 'auto' (chosen on validation, applied to test), 'none', "
            "or a number in [0, 1). The plain majority vote is always reported as *_song_f1."
        },
    )

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"--dataset must be one of {list(DATASETS)}, got {self.dataset!r}.")
        if self.dataset_name is not None and self.dataset == "synthetic":
            self.dataset = "custom"  # --dataset_name: any datasets dataset or audio folder
        if self.dataset == "custom" and self.dataset_name is None:
            raise ValueError("--dataset custom needs --dataset_name (a Hub dataset id or a local folder).")
        if self.dataset in ("gtzan", "artist20", "magnatagatune"):
            from ..data.archives import is_archive

            if self.data_dir is None and self.dataset != "gtzan":
                raise ValueError(
                    f"--data_dir is required for --dataset {self.dataset} (the folder holding the audio"
                    + (", or artist20-mp3s-32k.tgz)." if self.dataset == "artist20" else " and annotations_final.csv).")
                )
            if self.data_dir is not None and not (os.path.isdir(self.data_dir) or is_archive(self.data_dir)):
                raise ValueError(
                    f"--data_dir {self.data_dir!r} is neither a folder nor a .tar.gz/.tgz/.zip archive of the dataset."
                )
        try:
            fractions = tuple(float(part) for part in str(self.split_fractions).split(","))
        except ValueError:
            fractions = ()
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(
                f"--split_fractions must be three numbers train,validation,test summing to 1, got {self.split_fractions!r}."
            )
        if self.slice_seconds is not None and self.slice_seconds <= 0:
            raise ValueError(f"--slice_seconds must be > 0, got {self.slice_seconds}.")
        if self.slice_overlap_seconds < 0 or (
            self.slice_seconds is not None and self.slice_overlap_seconds >= self.slice_seconds
        ):
            raise ValueError(
                f"--slice_overlap_seconds must be in [0, slice_seconds), got {self.slice_overlap_seconds}."
            )
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} counts songs and must be >= 1, got {value}.")
        if self.synthetic_options is not None and self.dataset != "synthetic":
            raise ValueError("--synthetic_options only applies to --dataset synthetic.")
        if self.bias_class is not None and self.dataset == "synthetic":
            try:
                int(self.bias_class)
            except ValueError:
                raise ValueError(
                    f"--bias_class for --dataset synthetic is a class id, got {self.bias_class!r}."
                ) from None
        self.parsed_bias_band()
        if self.stems_dir is not None:
            if self.dataset == "synthetic":
                raise ValueError("--stems_dir applies to --dataset gtzan or artist20, not synthetic.")
            if not os.path.isdir(self.stems_dir):
                raise ValueError(f"--stems_dir {self.stems_dir!r} does not exist or is not a folder.")
        self.parsed_vote_threshold()

    def parsed_bias_band(self) -> tuple[float, float]:
        """`--bias_band_hz` as `(low, high)` in Hz."""
        try:
            low, high = (float(part) for part in str(self.bias_band_hz).split(","))
        except ValueError:
            raise ValueError(f"--bias_band_hz must be 'low,high' in Hz, got {self.bias_band_hz!r}.") from None
        if not 0 < low < high:
            raise ValueError(f"--bias_band_hz must satisfy 0 < low < high, got {self.bias_band_hz!r}.")
        return low, high

    def parsed_vote_threshold(self):
        """`"auto"`, `None` or a float in [0, 1)."""
        text = str(self.vote_threshold).strip().lower()
        if text == "auto":
            return "auto"
        if text == "none":
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(
                f"--vote_threshold must be 'auto', 'none' or a number in [0, 1), got {self.vote_threshold!r}."
            )
        if not 0.0 <= value < 1.0:
            raise ValueError(f"--vote_threshold must be in [0, 1), got {value}.")
        return value


# ----------------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------------


def _json_to_flags(values: dict) -> list[str]:
    """A preset's JSON object as command-line flags, so that flags given after the file override it."""
    flags = []
    for key, value in values.items():
        if value is None:
            continue
        flags.append(f"--{key}")
        if isinstance(value, bool):
            flags.append(str(value).lower())
        elif isinstance(value, list):
            flags.extend(str(item) for item in value)
        elif isinstance(value, dict):
            flags.append(json.dumps(value))
        else:
            flags.append(str(value))
    return flags


DESCRIPTION = """Train and evaluate GenreMERT or CRNN_FGNL, plain or with learnable counterfactual attention (LCA).

  python run_classification.py configs/crnn_fgnl_lca_artist20_5s.json --data_dir /data/artist20   # a preset
  python run_classification.py --model_type crnn_fgnl --dataset synthetic --counterfactual learned \\
      --num_train_epochs 6 --output_dir outputs/x --do_train --do_eval --do_predict

The first argument may be a JSON preset (configs/*.json); flags after it override its values. The model, data and
LCA flags come first below; the generic Trainer flags (TrainingArguments) follow. Docs: docs/training.md."""

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
    "overwrite_output_dir",
    "backbone_cache_dir",
    "backbone_cache_dtype",
    "eval_autocast",
)


def build_parser() -> HfArgumentParser:
    """The parser of `run_classification.py`: a description with the launch forms, the LCA flags in their own group
    before the 500 lines of generic Trainer flags, and `--no_*` switches with their own help."""
    import argparse

    parser = HfArgumentParser(
        (ModelArguments, DataTrainingArguments, LCATrainingArguments),
        description=DESCRIPTION,
        usage="run_classification.py [PRESET.json] [--flag value ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import dataclasses

    groups = {
        "model": {field.name for field in dataclasses.fields(ModelArguments)},
        "data": {field.name for field in dataclasses.fields(DataTrainingArguments)},
        "LCA (paper Eq. 1, the two-step schedule, the output folder)": set(LCA_FLAGS),
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
    return parser


def parse_arguments(argv: list[str] | None = None):
    """`(ModelArguments, DataTrainingArguments, LCATrainingArguments)` from flags, or a JSON file then flags."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        path = os.path.abspath(argv[0])
        try:
            with open(path) as handle:
                preset = json.load(handle)
        except FileNotFoundError:
            raise ValueError(f"argument file {path} does not exist.") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"argument file {path} is not valid JSON: {error}") from None
        if not isinstance(preset, dict):
            raise ValueError(f"argument file {path} must hold a JSON object of flag names to values.")
        argv = _json_to_flags(preset) + argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)


def parse_config_overrides(text: str | None) -> dict:
    """`'a=1,b=[1,2],c.d=x'` → `{"a": 1, "b": [1, 2], "c.d": "x"}` (values JSON when they parse, else strings)."""
    if not text:
        return {}
    items, depth, current = [], 0, ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    overrides = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"--config_overrides: {item!r} is not of the form key=value.")
        key, value = (part.strip() for part in item.split("=", 1))
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError as error:
            if value[:1] in "[{" or value.count("[") != value.count("]") or value.count("{") != value.count("}"):
                raise ValueError(
                    f"--config_overrides: the value of {key!r}, {value!r}, is not valid JSON ({error.msg}); write "
                    "lists as [4,8,8,8] and quote the whole flag in the shell."
                ) from None
            overrides[key] = {"True": True, "False": False, "None": None}.get(value, value)
    if depth != 0:
        raise ValueError(f"--config_overrides {text!r}: unbalanced brackets.")
    return overrides
