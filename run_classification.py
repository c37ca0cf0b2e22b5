#!/usr/bin/env python
"""Train and evaluate GenreMERT or CRNN_FGNL, plain or with learnable counterfactual attention (LCA), on GTZAN,
artist20 or the synthetic shortcut benchmark; frame- and song-level scores, confusion matrices, TensorBoard logs and
a model folder that `pipeline("audio-classification", model=<output_dir>, trust_remote_code=True)` loads.

One process (CPU or one GPU):

    python run_classification.py --model_type crnn_fgnl --dataset synthetic --counterfactual learned \
        --cf_warmup_epochs 2 --num_train_epochs 6 --output_dir outputs/crnn_lca --do_train --do_eval --do_predict

A preset (one JSON file; flags after it override its values):

    python run_classification.py configs/genremert_lca.json --data_dir /data/gtzan \
        --backbone_name_or_path m-a-p/MERT-v1-95M --output_dir outputs/genremert_lca

Several GPUs (DDP), optionally in bf16:

    accelerate launch --multi_gpu --num_processes 4 run_classification.py configs/genremert_lca.json \
        --data_dir /data/gtzan --backbone_name_or_path m-a-p/MERT-v1-95M --bf16 true --output_dir outputs/x

Two CPU processes (gloo; with accelerate 1.15, `accelerate launch --cpu --num_processes 2` starts only one):

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 run_classification.py ...

Written to `--output_dir`: the final model (`config.json` with `auto_map`, `model.safetensors`,
`preprocessor_config.json`, the code files), `all_results.json` (`{eval,test}_{frame,song}_{accuracy,f1}`, ...),
`confusion_matrix_<split>_{frame,song}.{png,json}`, `classification_report_<split>.json`, `checkpoint-*/` and
TensorBoard logs under `runs/`. See docs/training.md.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import sys
from dataclasses import dataclass, field

import datasets
import transformers
from transformers import (
    AutoConfig,
    HfArgumentParser,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

import music_datasets
from configuration_genremert import (
    COUNTERFACTUAL_MODES,
    CRNNFGNLConfig,
    GenreMERTConfig,
)
from lca_metrics import (
    LCAMetrics,
    choose_vote_threshold,
    compute_split_metrics,
    softmax,
    split_predictions,
    write_split_reports,
)
from lca_trainer import (
    LCATrainer,
    LCATrainingArguments,
    NonFiniteLossError,
    SliceCollator,
)
from modeling_genremert import (
    CRNNFGNLForAudioClassification,
    GenreMERTForAudioClassification,
    build_feature_extractor,
)

logger = logging.getLogger(__name__)

MODEL_TYPES = {
    "genremert": (GenreMERTConfig, GenreMERTForAudioClassification),
    "crnn_fgnl": (CRNNFGNLConfig, CRNNFGNLForAudioClassification),
}
DATASETS = ("gtzan", "artist20", "synthetic")
DEFAULT_SPLITS = {"gtzan": "fault_filtered", "artist20": "album", "synthetic": "album"}
# Config keys that come from the dataset, never from --config_overrides.
LABEL_KEYS = ("num_labels", "id2label", "label2id")


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
        metadata={
            "help": "Start from a saved genremert model folder (or Hub id) instead of a new model."
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
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where Hub downloads are stored."}
    )
    model_revision: str = field(
        default="main", metadata={"help": "Hub revision (branch, tag or commit)."}
    )
    token: str | None = field(
        default=None, metadata={"help": "Hub token for private weights."}
    )

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise ValueError(
                f"--model_type must be one of {list(MODEL_TYPES)}, got {self.model_type!r}."
            )
        if self.counterfactual not in COUNTERFACTUAL_MODES:
            raise ValueError(
                f"--counterfactual must be one of {list(COUNTERFACTUAL_MODES)}, got {self.counterfactual!r}."
            )
        if self.backbone_name_or_path is not None and self.model_type != "genremert":
            raise ValueError(
                "--backbone_name_or_path (MERT weights) only applies to --model_type genremert."
            )
        if self.config_overrides is not None and self.model_name_or_path is not None:
            raise ValueError(
                "--config_overrides builds a new model; it cannot be combined with --model_name_or_path."
            )


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
            "help": "Dataset folder (required for gtzan and artist20; for synthetic: where the generated "
            "audio is cached)."
        },
    )
    split: str | None = field(
        default=None,
        metadata={
            "help": "Train/validation/test split of the dataset (default: gtzan 'fault_filtered', artist20 "
            "'album', synthetic 'album')."
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
        metadata={
            "help": "Slice (frame) length in seconds; default: the model config's slice_seconds."
        },
    )
    slice_overlap_seconds: float = field(
        default=0.0, metadata={"help": "Overlap of consecutive slices (seconds)."}
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={
            "help": "Use at most this many training *songs* (chosen with --seed), for quick runs."
        },
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "At most this many validation songs."}
    )
    max_predict_samples: int | None = field(
        default=None, metadata={"help": "At most this many songs per test split."}
    )
    audio_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Keep decoded, resampled songs here as .npy (faster later epochs and runs)."
        },
    )
    synthetic_options: str | None = field(
        default=None,
        metadata={
            "help": "Synthetic dataset: JSON object of music_datasets.load_synthetic arguments, e.g. "
            '\'{"num_classes": 5, "song_seconds": 20}\'.'
        },
    )
    bias_class: int | None = field(
        default=None,
        metadata={
            "help": "Synthetic dataset: the class whose training songs carry the band noise."
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
            raise ValueError(
                f"--dataset must be one of {list(DATASETS)}, got {self.dataset!r}."
            )
        if self.dataset in ("gtzan", "artist20"):
            if self.data_dir is None:
                raise ValueError(
                    f"--data_dir is required for --dataset {self.dataset} (the folder holding the audio)."
                )
            if not os.path.isdir(self.data_dir):
                raise ValueError(
                    f"--data_dir {self.data_dir!r} does not exist or is not a folder."
                )
        if self.slice_seconds is not None and self.slice_seconds <= 0:
            raise ValueError(f"--slice_seconds must be > 0, got {self.slice_seconds}.")
        if self.slice_overlap_seconds < 0 or (
            self.slice_seconds is not None
            and self.slice_overlap_seconds >= self.slice_seconds
        ):
            raise ValueError(
                f"--slice_overlap_seconds must be in [0, slice_seconds), got {self.slice_overlap_seconds}."
            )
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(
                    f"--{name} counts songs and must be >= 1, got {value}."
                )
        if self.synthetic_options is not None and self.dataset != "synthetic":
            raise ValueError("--synthetic_options only applies to --dataset synthetic.")
        if self.bias_class is not None and self.dataset != "synthetic":
            raise ValueError("--bias_class only applies to --dataset synthetic.")
        if self.stems_dir is not None:
            if self.dataset == "synthetic":
                raise ValueError(
                    "--stems_dir applies to --dataset gtzan or artist20, not synthetic."
                )
            if not os.path.isdir(self.stems_dir):
                raise ValueError(
                    f"--stems_dir {self.stems_dir!r} does not exist or is not a folder."
                )
        self.parsed_vote_threshold()

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


def parse_arguments(argv: list[str] | None = None):
    """`(ModelArguments, DataTrainingArguments, LCATrainingArguments)` from flags, or a JSON file then flags."""
    parser = HfArgumentParser(
        (ModelArguments, DataTrainingArguments, LCATrainingArguments)
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        path = os.path.abspath(argv[0])
        try:
            with open(path) as handle:
                preset = json.load(handle)
        except FileNotFoundError:
            raise ValueError(f"argument file {path} does not exist.") from None
        except json.JSONDecodeError as error:
            raise ValueError(
                f"argument file {path} is not valid JSON: {error}"
            ) from None
        if not isinstance(preset, dict):
            raise ValueError(
                f"argument file {path} must hold a JSON object of flag names to values."
            )
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
            raise ValueError(
                f"--config_overrides: {item!r} is not of the form key=value."
            )
        key, value = (part.strip() for part in item.split("=", 1))
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = {"True": True, "False": False, "None": None}.get(
                value, value
            )
    return overrides


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------


def load_songs(data_args: DataTrainingArguments, seed: int) -> datasets.DatasetDict:
    """The song-level DatasetDict of the chosen dataset (`train`, `validation`, `test` [, `test_noisy`])."""
    split = data_args.split or DEFAULT_SPLITS[data_args.dataset]
    if data_args.dataset == "synthetic":
        options = {}
        if data_args.synthetic_options:
            try:
                options = json.loads(data_args.synthetic_options)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"--synthetic_options is not valid JSON: {error}"
                ) from None
            if not isinstance(options, dict):
                raise ValueError(
                    "--synthetic_options must be a JSON object of load_synthetic arguments."
                )
            allowed = set(inspect.signature(music_datasets.load_synthetic).parameters)
            unknown = sorted(set(options) - allowed)
            if unknown:
                raise ValueError(
                    f"--synthetic_options: unknown argument(s) {unknown}; allowed: {sorted(allowed)}."
                )
        options.setdefault("split", split)
        if data_args.bias_class is not None:
            options["bias_class"] = data_args.bias_class
        if data_args.data_dir is not None:
            options.setdefault("cache_dir", data_args.data_dir)
        return music_datasets.load_synthetic(**options)
    loader_name = f"load_{data_args.dataset}"
    loader = getattr(music_datasets, loader_name, None)
    if loader is None:
        raise ValueError(
            f"music_datasets has no {loader_name}(): this version cannot load --dataset {data_args.dataset}."
        )
    return loader(
        data_args.data_dir, split=split, seed=seed, stems_dir=data_args.stems_dir
    )


def select_songs(
    songs: datasets.Dataset, max_songs: int | None, seed: int
) -> datasets.Dataset:
    """At most `max_songs` songs, drawn with `seed` (the `--max_*_samples` flags count songs, not slices)."""
    if max_songs is None or max_songs >= len(songs):
        return songs
    return songs.shuffle(seed=seed).select(range(max_songs))


def label_names_of(songs: datasets.DatasetDict) -> list[str]:
    feature = songs["train"].features["label"]
    if not hasattr(feature, "names"):
        raise ValueError(
            f"the dataset's `label` column must be a ClassLabel, got {feature}."
        )
    return list(feature.names)


def check_label_names(config, label_names: list[str], source: str) -> None:
    """Refuses a checkpoint whose `id2label` differs from the dataset's class names (order included)."""
    id2label = {int(k): v for k, v in (config.id2label or {}).items()}
    checkpoint_names = [id2label[i] for i in sorted(id2label)]
    if checkpoint_names != list(label_names):
        raise ValueError(
            f"the labels of {source} do not match the dataset: checkpoint id2label = {checkpoint_names}, dataset "
            f"labels = {list(label_names)}. Use a checkpoint trained on this dataset, or train a new model."
        )


# ----------------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------------


def build_config(
    model_args: ModelArguments, label_names: list[str], slice_seconds: float | None
):
    """A new model's config: the model type's defaults, the dataset's labels, then `--config_overrides`."""
    config_class, _ = MODEL_TYPES[model_args.model_type]
    kwargs = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "counterfactual": model_args.counterfactual,
    }
    if slice_seconds is not None:
        kwargs["slice_seconds"] = slice_seconds
    allowed = set(inspect.signature(config_class.__init__).parameters) - {
        "self",
        "kwargs",
    }
    for key, value in parse_config_overrides(model_args.config_overrides).items():
        top, _, nested = key.partition(".")
        if top in LABEL_KEYS or top == "counterfactual":
            raise ValueError(
                f"--config_overrides cannot set {top!r}: it comes from the dataset or --counterfactual."
            )
        if top not in allowed:
            raise ValueError(
                f"--config_overrides: unknown field {top!r} for --model_type {model_args.model_type}; known fields: "
                f"{sorted(allowed)}."
            )
        if nested:
            if top != "backbone_config":
                raise ValueError(
                    f"--config_overrides: {key!r}: only backbone_config has nested fields."
                )
            from configuration_genremert import MERT_V1_95M_BACKBONE

            backbone = kwargs.setdefault("backbone_config", dict(MERT_V1_95M_BACKBONE))
            backbone[nested] = value
        else:
            kwargs[top] = value
    return config_class(**kwargs)


def load_or_build_model(
    model_args: ModelArguments, label_names: list[str], slice_seconds: float | None
):
    """The model to train: loaded from `--model_name_or_path` (labels checked) or built new; MERT weights loaded."""
    _, model_class = MODEL_TYPES[model_args.model_type]
    hub_kwargs = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
    }
    if model_args.model_name_or_path is not None:
        config = AutoConfig.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=True, **hub_kwargs
        )
        if config.model_type != model_args.model_type:
            raise ValueError(
                f"--model_name_or_path {model_args.model_name_or_path} holds a {config.model_type!r} model, but "
                f"--model_type is {model_args.model_type!r}."
            )
        check_label_names(
            config, label_names, f"--model_name_or_path {model_args.model_name_or_path}"
        )
        config.counterfactual = model_args.counterfactual
        if slice_seconds is not None:
            config.slice_seconds = float(slice_seconds)
        model = model_class.from_pretrained(
            model_args.model_name_or_path, config=config, **hub_kwargs
        )
    else:
        config = build_config(model_args, label_names, slice_seconds)
        model = model_class(config)
    if model_args.backbone_name_or_path is not None:
        model.load_mert_weights(
            model_args.backbone_name_or_path,
            revision=model_args.model_revision,
            token=model_args.token,
            cache_dir=model_args.cache_dir,
        )
    elif model_args.model_type == "genremert" and model_args.model_name_or_path is None:
        logger.warning(
            "GenreMERT with a randomly initialised backbone: pass --backbone_name_or_path m-a-p/MERT-v1-95M (or a "
            "folder with MERT's weights) to reproduce the paper."
        )
    return model


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-*` of `output_dir` that was saved completely (the Trainer writes `trainer_state.json`
    last); a folder left half-written by a crash during saving is skipped with a warning, never resumed from."""
    if not os.path.isdir(output_dir):
        return None
    folders = [
        name
        for name in os.listdir(output_dir)
        if name.startswith("checkpoint-")
        and name[11:].isdigit()
        and os.path.isdir(os.path.join(output_dir, name))
    ]
    for name in sorted(folders, key=lambda name: int(name[11:]), reverse=True):
        folder = os.path.join(output_dir, name)
        if os.path.isfile(os.path.join(folder, "trainer_state.json")):
            return folder
        logger.warning(
            f"{folder} is incomplete (no trainer_state.json: interrupted while saving); skipping it."
        )
    return None


def resolve_checkpoint(
    training_args: LCATrainingArguments, label_names: list[str]
) -> str | None:
    """`--resume_from_checkpoint`: a folder, or `last`/`true` for the newest complete `checkpoint-*` in
    `--output_dir`. The checkpoint's labels are checked against the dataset before anything is trained."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("false", "none", ""):
        last = (
            get_last_checkpoint(training_args.output_dir)
            if os.path.isdir(training_args.output_dir)
            else None
        )
        if last is not None and training_args.do_train:
            logger.warning(
                f"{training_args.output_dir} already holds {last}; training starts from scratch and will overwrite "
                "checkpoints. Pass --resume_from_checkpoint last to continue that run instead."
            )
        return None
    if str(value).lower() in ("last", "true"):
        checkpoint = last_complete_checkpoint(training_args.output_dir)
        if checkpoint is None:
            raise ValueError(
                f"--resume_from_checkpoint {value}: no complete checkpoint-* folder in {training_args.output_dir}."
            )
    else:
        checkpoint = value
        if not os.path.isdir(checkpoint):
            raise ValueError(f"--resume_from_checkpoint {checkpoint}: no such folder.")
        if not os.path.isfile(os.path.join(checkpoint, "trainer_state.json")):
            raise ValueError(
                f"--resume_from_checkpoint {checkpoint} is incomplete (no trainer_state.json: it was interrupted "
                "while saving, or is not a Trainer checkpoint); resume from an earlier checkpoint."
            )
    config_file = os.path.join(checkpoint, "config.json")
    if not os.path.isfile(config_file):
        raise ValueError(
            f"--resume_from_checkpoint {checkpoint}: no config.json there; not a Trainer checkpoint."
        )
    with open(config_file) as handle:
        saved = json.load(handle)
    check_label_names(
        transformers.PretrainedConfig(id2label=saved.get("id2label")),
        label_names,
        f"checkpoint {checkpoint}",
    )
    # Training resumes in the checkpoint's weights: the model must be built with the same architecture.
    training_args.resume_from_checkpoint = checkpoint
    return checkpoint


# ----------------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------------


def setup_logging(training_args: LCATrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def evaluate_split(
    trainer: LCATrainer,
    slices,
    split_name: str,
    label_names: list[str],
    vote_threshold,
    choose_threshold: bool = False,
) -> tuple[dict, float | None]:
    """Predicts one split (all processes), scores it once on the gathered slices, writes its reports.

    With `choose_threshold`, the vote threshold is chosen on this split (validation) and returned.
    """
    output = trainer.predict(slices, metric_key_prefix=split_name)
    logits, counterfactual_logits, labels, song_index = split_predictions(
        output.predictions, output.label_ids
    )
    num_labels = len(label_names)
    if choose_threshold:
        vote_threshold, _ = choose_vote_threshold(
            softmax(logits), labels, song_index, num_labels
        )
    metrics = {k: v for k, v in output.metrics.items()}
    scores = compute_split_metrics(
        logits, labels, song_index, num_labels, counterfactual_logits, vote_threshold
    )
    metrics.update({f"{split_name}_{key}": value for key, value in scores.items()})
    if trainer.is_world_process_zero():
        write_split_reports(
            trainer.args.output_dir,
            split_name,
            logits,
            labels,
            song_index,
            label_names,
            vote_threshold,
        )
    return metrics, vote_threshold


def save_run_arguments(output_dir: str, model_args, data_args, training_args) -> str:
    """Write every argument of the run to `run_args.json` (JSON, never a pickle): the model card of `hub_upload.py`
    reads the LCA weights and the training configuration from it, since `training_args.bin` is a pickle that must
    not be opened. Written to a temporary file and renamed, so a crash never leaves half a file."""
    os.makedirs(output_dir, exist_ok=True)
    arguments = {
        "model_args": dataclasses.asdict(model_args),
        "data_args": dataclasses.asdict(data_args),
        "training_args": json.loads(training_args.to_json_string()),
    }
    path = os.path.join(output_dir, "run_args.json")
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(arguments, file, indent=2, sort_keys=True, default=str)
    os.replace(temporary, path)
    return path


def main(argv: list[str] | None = None) -> dict:
    """Runs what `--do_train/--do_eval/--do_predict` ask for; returns the content of `all_results.json`."""
    model_args, data_args, training_args = parse_arguments(argv)
    setup_logging(training_args)
    # Slice rows are decoded on the fly; the song index travels with the labels for song-level voting.
    training_args.remove_unused_columns = False
    training_args.label_names = ["labels", "song_index"]
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = (
            False  # nothing to pin to without an accelerator
        )
    logger.warning(
        f"process rank {training_args.process_index} of {training_args.world_size}, device {training_args.device}, "
        f"distributed: {training_args.parallel_mode.value}, bf16: {training_args.bf16}, fp16: {training_args.fp16}"
    )
    set_seed(training_args.seed)

    with training_args.main_process_first(desc="load and slice the songs"):
        songs = load_songs(data_args, training_args.seed)
        label_names = label_names_of(songs)
        limits = {
            "train": data_args.max_train_samples,
            "validation": data_args.max_eval_samples,
        }
        for split_name in songs:
            limit = limits.get(split_name, data_args.max_predict_samples)
            songs[split_name] = select_songs(
                songs[split_name], limit, training_args.seed
            )
        checkpoint = resolve_checkpoint(training_args, label_names)
        model = load_or_build_model(model_args, label_names, data_args.slice_seconds)
        slice_seconds = (
            model.config.slice_seconds
        )  # the pipeline slices inference audio the same way
        slices = music_datasets.slice_songs(
            songs,
            model.config.sampling_rate,
            slice_seconds,
            data_args.slice_overlap_seconds,
            cache_dir=data_args.audio_cache_dir,
        )
    all_song_ids = sorted(
        {song_id for split in songs.values() for song_id in split["song_id"]}
    )
    song_index_of = {song_id: i for i, song_id in enumerate(all_song_ids)}
    feature_extractor = build_feature_extractor(model.config)
    logger.info(
        "songs / slices per split: "
        + ", ".join(f"{name} {len(songs[name])}/{len(slices[name])}" for name in songs)
        + f"; slices of {slice_seconds} s with {data_args.slice_overlap_seconds} s overlap"
    )

    vote_threshold = data_args.parsed_vote_threshold()
    needs_validation = (
        training_args.do_eval
        or training_args.eval_strategy != "no"
        or vote_threshold == "auto"
    )
    trainer = LCATrainer(
        model=model,
        args=training_args,
        train_dataset=slices["train"] if training_args.do_train else None,
        eval_dataset=slices["validation"] if needs_validation else None,
        processing_class=feature_extractor,
        data_collator=SliceCollator(feature_extractor, song_index_of),
        compute_metrics=LCAMetrics(num_labels=len(label_names)),
    )

    run_info = {
        "world_size": training_args.world_size,
        "distributed_type": str(trainer.accelerator.distributed_type),
        "model_type": model_args.model_type,
        "counterfactual": model.config.counterfactual,
        "dataset": data_args.dataset,
        "slice_seconds": slice_seconds,
        "slice_overlap_seconds": data_args.slice_overlap_seconds,
    }
    results = dict(run_info)
    trainer.save_metrics("run", run_info)
    if trainer.is_world_process_zero():
        save_run_arguments(training_args.output_dir, model_args, data_args, training_args)

    if training_args.do_train:
        try:
            train_result = trainer.train(resume_from_checkpoint=checkpoint)
        except NonFiniteLossError as error:
            logger.error(str(error))
            raise
        trainer.save_model()  # the final model folder: weights, config (auto_map), preprocessor, code files
        metrics = dict(train_result.metrics)
        metrics["train_songs"] = len(songs["train"])
        metrics["train_slices"] = len(slices["train"])
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        results.update(metrics)

    chosen_threshold = None if vote_threshold == "auto" else vote_threshold
    if training_args.do_eval or (training_args.do_predict and vote_threshold == "auto"):
        metrics, threshold = evaluate_split(
            trainer,
            slices["validation"],
            "eval",
            label_names,
            chosen_threshold,
            choose_threshold=vote_threshold == "auto",
        )
        chosen_threshold = threshold
        metrics["eval_songs"] = len(songs["validation"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        results.update(metrics)

    if training_args.do_predict:
        for split_name in [name for name in songs if name.startswith("test")]:
            metrics, _ = evaluate_split(
                trainer, slices[split_name], split_name, label_names, chosen_threshold
            )
            metrics[f"{split_name}_songs"] = len(songs[split_name])
            trainer.log_metrics(split_name, metrics)
            trainer.save_metrics(split_name, metrics)
            results.update(metrics)
    return results


if __name__ == "__main__":
    main()
