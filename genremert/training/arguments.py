"""The arguments of `run_classification.py`: model, data and (in `lca_trainer`) training arguments, as dataclasses
that `HfArgumentParser` reads from flags or from one JSON preset followed by flags."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from configuration_genremert import COUNTERFACTUAL_MODES

from ..data.fma import FMA_LABELS, FMA_SIZES, FMA_SPLITS
from ..data.mtg_jamendo import MTG_JAMENDO_SUBSETS, split_index
from ..registry import MODEL_CLASSES as MODEL_TYPES
from .cli_help import BACKBONE_FLAGS, DESCRIPTION, HelpFormatter, arrange_help, is_note, presets_epilog
from .trainer import LCATrainingArguments


DATASETS = ("gtzan", "artist20", "magnatagatune", "mtg_jamendo", "fma", "synthetic", "custom")
DEFAULT_SPLITS = {
    "gtzan": "fault_filtered",
    "artist20": "album",
    "magnatagatune": "directory",
    "mtg_jamendo": "0",  # the official split-0 (of split-0 … split-4)
    "fma": "official",
    "synthetic": "album",
    "custom": None,
}
# Datasets whose songs carry a list of tags (multi-label tagging: sigmoid outputs, BCE, ROC-AUC / PR-AUC). FMA is
# multi-label too with --fma_labels genres / genres_all (`preparation.is_tagging` reads it from the songs).
TAGGING_DATASETS = ("magnatagatune", "mtg_jamendo")
# Datasets read from a folder (or archive) of their own layout: --data_dir is required (gtzan can download itself).
FOLDER_DATASETS = ("gtzan", "artist20", "magnatagatune", "mtg_jamendo", "fma")
# The frozen backbone's compute precision and feature cache (`frozen_backbone.py`).
BACKBONE_DTYPES = ("auto", "float32", "bfloat16")
BACKBONE_CACHE_MODES = ("auto", "off")


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
    backbone_dtype: str = field(
        default="float32",
        metadata={
            "help": "GenreMERT: the precision the backbone runs in (its weights stay float32; the head always runs "
            "float32). 'auto': bfloat16 where the hardware computes it natively (a CUDA GPU with bfloat16, a CPU with "
            "avx512_bf16 or amx_bf16), float32 elsewhere; the choice and its reason are logged. The GenreMERT presets "
            "set 'auto'; pass float32 to turn it off.",
            "choices": list(BACKBONE_DTYPES),
        },
    )
    backbone_cache: str = field(
        default="off",
        metadata={
            "help": "GenreMERT: 'auto' computes the frozen backbone once (the first epoch) and reads its hidden states "
            "from a feature cache afterwards (--backbone_cache_dir, by default ~/.cache/genremert/backbone/<key of "
            "the backbone>, $GENREMERT_CACHE/backbone when set), when the model's backbone is frozen and the cache "
            "fits the free disk space; the choice and its reason are logged. The GenreMERT presets set 'auto'; pass "
            "'off' to run the backbone every epoch.",
            "choices": list(BACKBONE_CACHE_MODES),
        },
    )

    def __post_init__(self):
        if self.backbone_dtype not in BACKBONE_DTYPES:
            raise ValueError(f"--backbone_dtype must be one of {list(BACKBONE_DTYPES)}, got {self.backbone_dtype!r}.")
        if self.backbone_cache not in BACKBONE_CACHE_MODES:
            raise ValueError(
                f"--backbone_cache must be one of {list(BACKBONE_CACHE_MODES)}, got {self.backbone_cache!r}."
            )
        if self.backbone_dtype == "bfloat16" and self.model_type != "genremert":
            raise ValueError(
                f"--backbone_dtype bfloat16 applies to --model_type genremert (its MERT backbone); --model_type "
                f"{self.model_type} has no backbone."
            )
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
            "dataset marsyas/gtzan into the Hugging Face cache (--gtzan_revision pins a commit). Required too for "
            "mtg_jamendo (the audio folder NN/<track>.mp3, the official split files under data/splits) and fma (the "
            "folder holding fma_metadata/ and fma_<size>/). For synthetic: where the generated audio is cached."
        },
    )
    split: str | None = field(
        default=None,
        metadata={
            "help": "Train/validation/test split of the dataset (default: gtzan 'fault_filtered', artist20 "
            "'album', magnatagatune 'directory', mtg_jamendo '0' (the official split-0; 0 … 4), fma 'official', "
            "synthetic 'album')."
        },
    )
    mtg_jamendo_subset: str | None = field(
        default=None,
        metadata={
            "help": "--dataset mtg_jamendo: the tag set (default top50: the 50 most frequent tags; genre, instrument, "
            "moodtheme: one category; all: every tag).",
            "choices": list(MTG_JAMENDO_SUBSETS),
        },
    )
    fma_size: str | None = field(
        default=None,
        metadata={
            "help": "--dataset fma: which FMA (default small: 8,000 tracks, 8 genres; medium 25,000; large 106,574 "
            "clips; full: large untrimmed). Sizes nest: small ⊂ medium ⊂ large.",
            "choices": list(FMA_SIZES),
        },
    )
    fma_labels: str | None = field(
        default=None,
        metadata={
            "help": "--dataset fma: the labels (default genre_top: one top-level genre per track, single-label; "
            "genres / genres_all: every genre of the track, with genres_all its ancestors too: multi-label tagging).",
            "choices": list(FMA_LABELS),
        },
    )
    allow_missing_files: bool = field(
        default=False,
        metadata={
            "help": "gtzan, magnatagatune, mtg_jamendo, fma: train on the songs that are on disk when some songs of "
            "the split lists are missing (refused by default: an incomplete copy usually means a wrong folder)."
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
    streaming: bool = field(
        default=False,
        metadata={
            "help": "--dataset_name: stream the train split (Hub id, or parquet / arrow / json / csv / WebDataset .tar "
            "shards) instead of reading it whole; needs --max_steps. Validation and test are read whole (docs/scaling.md)."
        },
    )
    shuffle_buffer_size: int = field(
        default=1000, metadata={"help": "--streaming: slices in the seeded shuffle buffer (reshuffled in each pass)."}
    )
    class_names: str | None = field(
        default=None,
        metadata={"help": "--streaming: the classes of a string / number label column in id order ('rock,jazz')."},
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
        if self.dataset in FOLDER_DATASETS:
            from ..data.archives import is_archive

            if self.data_dir is None and self.dataset != "gtzan":
                holds = {
                    "artist20": "the folder holding the audio, or artist20-mp3s-32k.tgz",
                    "magnatagatune": "the folder holding the audio and annotations_final.csv",
                    "mtg_jamendo": "the audio folder NN/<track>.mp3, with the official split files under data/splits",
                    "fma": "the folder holding fma_metadata/ and fma_<size>/",
                }
                raise ValueError(f"--data_dir is required for --dataset {self.dataset} ({holds[self.dataset]}).")
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
        if self.class_names is not None and not self.streaming:
            raise ValueError("--class_names applies to --streaming (a dataset read whole names its own classes).")
        if self.synthetic_options is not None and self.dataset != "synthetic":
            raise ValueError("--synthetic_options only applies to --dataset synthetic.")
        self._check_corpus_flags()
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

    def _check_corpus_flags(self) -> None:
        """The flags of one corpus (MTG-Jamendo's subset, FMA's size and labels) and its split, checked here so that
        a wrong value is named by its flag before anything is read."""
        own = {"mtg_jamendo_subset": "mtg_jamendo", "fma_size": "fma", "fma_labels": "fma"}
        choices = {"mtg_jamendo_subset": MTG_JAMENDO_SUBSETS, "fma_size": FMA_SIZES, "fma_labels": FMA_LABELS}
        for name, dataset in own.items():
            value = getattr(self, name)
            if value is None:
                continue
            if self.dataset != dataset:
                raise ValueError(f"--{name} only applies to --dataset {dataset}, not --dataset {self.dataset}.")
            if value not in choices[name]:
                raise ValueError(f"--{name} must be one of {list(choices[name])}, got {value!r}.")
        if self.split is None:
            return
        if self.dataset == "mtg_jamendo":
            try:
                split_index(self.split)
            except ValueError:
                raise ValueError(
                    f"--split {self.split!r} is not an official MTG-Jamendo split; expected 0 … 4 (or 'split-3')."
                ) from None
        elif self.dataset == "fma" and self.split not in FMA_SPLITS:
            raise ValueError(f"--split {self.split!r}: FMA has one split; expected one of {list(FMA_SPLITS)}.")

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
        if value is None or is_note(key):  # `_description`: a note for people, not a flag
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


def build_parser() -> HfArgumentParser:
    """The parser of `run_classification.py`: a description with the launch forms, the model, data, LCA and
    frozen-backbone flags in their own groups before the 500 lines of generic Trainer flags, every default shown,
    `--no_*` switches with their own help, and the presets listed at the end (`cli_help`)."""
    parser = HfArgumentParser(
        (ModelArguments, DataTrainingArguments, LCATrainingArguments),
        description=DESCRIPTION,
        usage="run_classification.py [PRESET.json] [--flag value ...]",
        formatter_class=HelpFormatter,
        epilog=presets_epilog(),
    )
    import dataclasses

    model_flags = {field.name for field in dataclasses.fields(ModelArguments)} - set(BACKBONE_FLAGS)
    arrange_help(parser, model_flags, {field.name for field in dataclasses.fields(DataTrainingArguments)})
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
