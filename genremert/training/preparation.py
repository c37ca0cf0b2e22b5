"""What a run needs before it trains: its songs, its labels, its config and model, the checkpoint to resume."""

from __future__ import annotations

import inspect
import json
import logging
import os

import datasets
import torch
import transformers
from transformers import AutoConfig
from transformers.trainer_utils import get_last_checkpoint

from ..data.audio_files import fill_cache, slice_songs
from ..data.corpora import load_artist20, load_gtzan
from ..data.fma import load_fma
from ..data.magnatagatune import load_magnatagatune
from ..data.mtg_jamendo import load_mtg_jamendo
from ..data.synthetic import load_synthetic
from ..evaluation.shortcut import resolve_bias
from ..publishing.mert_weights import load_mert_weights
from ..registry import MODEL_CLASSES as MODEL_TYPES
from ..registry import load_pretrained
from .arguments import (
    DEFAULT_SPLITS,
    DataTrainingArguments,
    ModelArguments,
    parse_config_overrides,
)
from .run_folder import (
    checkpoint_problem,
    last_complete_checkpoint,
)
from .trainer import (
    LCATrainer,
    LCATrainingArguments,
    SliceCollator,
)


logger = logging.getLogger(__name__)

# Config keys that come from the dataset, never from --config_overrides.
LABEL_KEYS = ("num_labels", "id2label", "label2id")


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------


def load_songs(data_args: DataTrainingArguments, seed: int, output_dir: str | None = None) -> datasets.DatasetDict:
    """The song-level DatasetDict of the chosen dataset (`train`, `validation`, `test` [, `test_noisy`])."""
    if data_args.dataset == "custom":
        from ..data.your_data import load_dataset_songs

        return load_dataset_songs(
            data_args.dataset_name,
            data_args.dataset_config_name,
            audio_column=data_args.audio_column_name,
            label_column=data_args.label_column_name,
            song_column=data_args.song_column_name,
            group_column=data_args.group_column_name,
            train_split=data_args.train_split_name,
            validation_split=data_args.validation_split_name,
            test_split=data_args.test_split_name,
            split_fractions=tuple(float(part) for part in data_args.split_fractions.split(",")),
            split_seed=seed,
            split_file=os.path.join(output_dir, "split.json") if output_dir else None,
            audio_dir=os.path.join(data_args.data_dir, "embedded_audio") if data_args.data_dir else None,
            revision=data_args.dataset_revision,
            allow_outside_paths=data_args.allow_paths_outside_dataset,
        )
    split = data_args.split or DEFAULT_SPLITS[data_args.dataset]
    if data_args.dataset == "synthetic":
        options = {}
        if data_args.synthetic_options:
            try:
                options = json.loads(data_args.synthetic_options)
            except json.JSONDecodeError as error:
                raise ValueError(f"--synthetic_options is not valid JSON: {error}") from None
            if not isinstance(options, dict):
                raise ValueError("--synthetic_options must be a JSON object of load_synthetic arguments.")
            allowed = set(inspect.signature(load_synthetic).parameters)
            unknown = sorted(set(options) - allowed)
            if unknown:
                raise ValueError(f"--synthetic_options: unknown argument(s) {unknown}; allowed: {sorted(allowed)}.")
        options.setdefault("split", split)
        if data_args.bias_class is not None:
            options["bias_class"] = int(data_args.bias_class)
        if data_args.data_dir is not None:
            options.setdefault("cache_dir", data_args.data_dir)
        return load_synthetic(**options)
    loaders = {
        "gtzan": load_gtzan,
        "artist20": load_artist20,
        "magnatagatune": load_magnatagatune,
        "mtg_jamendo": load_mtg_jamendo,
        "fma": load_fma,
    }
    loader = loaders.get(data_args.dataset)
    if loader is None:
        raise ValueError(f"--dataset {data_args.dataset!r}: no loader; expected one of {', '.join(loaders)}.")
    extra = {}
    if data_args.dataset == "gtzan":
        extra["gtzan_revision"] = data_args.gtzan_revision
    if data_args.dataset == "mtg_jamendo" and data_args.mtg_jamendo_subset is not None:
        extra["subset"] = data_args.mtg_jamendo_subset
    if data_args.dataset == "fma":
        extra.update({key: getattr(data_args, f"fma_{key}") for key in ("size", "labels")})
        extra = {key: value for key, value in extra.items() if value is not None}
    if data_args.dataset in ("gtzan", "magnatagatune", "mtg_jamendo", "fma") and data_args.allow_missing_files:
        extra["allow_missing_files"] = True
    return loader(data_args.data_dir, split=split, seed=seed, stems_dir=data_args.stems_dir, **extra)


def prepare_songs(data_args: DataTrainingArguments, output_dir: str | None):
    """`(songs, label names, multi_label)` of a run or an extraction: the dataset's splits, each cut to its
    `--max_*_samples` songs."""
    songs = load_songs(data_args, data_args.split_seed, output_dir)
    label_names = label_names_of(songs)
    multi_label = is_tagging(songs)
    if multi_label and data_args.bias_class is not None:
        raise ValueError(
            f"--bias_class {data_args.bias_class!r}: the shortcut protocol scores one class per song; the "
            f"{data_args.dataset} songs carry tags (multi-label)."
        )
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples}
    for split_name in songs:
        songs[split_name] = select_songs(
            songs[split_name], limits.get(split_name, data_args.max_predict_samples), data_args.split_seed
        )
    return songs, label_names, multi_label


def slice_run_songs(songs: datasets.DatasetDict, data_args: DataTrainingArguments, config, label_names: list[str]):
    """`(slices, bias class, noisy songs)`: every split cut into the model's slices, with the shortcut protocol's noise
    (`resolve_bias`; a `test_noisy` split is added to `songs`) and the decoded-audio cache filled first. One rule for
    training and feature extraction, so that a feature store holds exactly the slices a run reads."""
    bias_class, bias_noise, noisy_songs = resolve_bias(data_args, songs, label_names)
    if data_args.audio_cache_dir is not None:
        # Decode every sample of every song now: a bad song is named before training, not hours into it.
        fill_cache(songs, config.sampling_rate, data_args.audio_cache_dir)
    slices = slice_songs(
        songs,
        config.sampling_rate,
        config.slice_seconds,
        data_args.slice_overlap_seconds,
        keep_remainder=config.slice_remainder == "end",
        cache_dir=data_args.audio_cache_dir,
        noise=bias_noise,
        noisy_songs=noisy_songs,
    )
    return slices, bias_class, noisy_songs


def check_streaming_run(data_args: DataTrainingArguments, training_args: LCATrainingArguments) -> None:
    """The flags a streamed run needs or cannot honour, refused by name before anything is read."""
    if data_args.dataset != "custom":
        raise ValueError(f"--streaming reads --dataset_name (a Hub id or a folder), not --dataset {data_args.dataset}.")
    if data_args.shuffle_buffer_size < 1:
        raise ValueError(f"--shuffle_buffer_size must be >= 1, got {data_args.shuffle_buffer_size}.")
    refused = {
        "max_train_samples": "bound the run with --max_steps",
        "audio_cache_dir": "a stream is decoded as it is read",
        "feature_store": "a store holds the slices of a song table",
        "bias_class": "the shortcut protocol marks training songs up front",
        "stems_dir": "stems are separate files of the dedicated loaders",
    }
    for name, reason in refused.items():
        if getattr(data_args, name) is not None:
            raise ValueError(f"--{name} cannot be combined with --streaming ({reason}).")
    if not training_args.do_train:
        return
    if training_args.max_steps is None or training_args.max_steps <= 0:
        raise ValueError(
            f"--streaming needs --max_steps (got {training_args.max_steps}): a stream has no length, so the run is "
            "counted in optimizer steps, not epochs (e.g. --max_steps 5000)."
        )
    if training_args.cf_warmup_epochs > 0:
        raise ValueError(
            f"--cf_warmup_epochs {training_args.cf_warmup_epochs} cannot be combined with --streaming: a streamed run "
            "is one Trainer epoch of --max_steps steps, so a warm-up counted in epochs would never end."
        )
    if training_args.backbone_cache_dir is not None:
        raise ValueError("--backbone_cache_dir cannot be combined with --streaming (its keys name slices of files).")


def prepare_streamed_songs(data_args: DataTrainingArguments, training_args: LCATrainingArguments):
    """`(streamed songs, evaluation songs, label names, multi_label)` of a `--streaming` run: the training split stays
    a stream (`data/streaming.py`); validation and test are read into song datasets, each cut to its
    `--max_*_samples` songs, and are sliced and scored exactly as without streaming."""
    from ..data.streaming import load_streamed_songs, parse_class_names

    check_streaming_run(data_args, training_args)
    streamed = load_streamed_songs(
        data_args.dataset_name,
        data_args.dataset_config_name,
        audio_column=data_args.audio_column_name,
        label_column=data_args.label_column_name,
        song_column=data_args.song_column_name,
        group_column=data_args.group_column_name,
        class_names=parse_class_names(data_args.class_names),
        train_split=data_args.train_split_name,
        validation_split=data_args.validation_split_name,
        test_split=data_args.test_split_name,
        audio_dir=os.path.join(data_args.data_dir, "embedded_audio") if data_args.data_dir else None,
        revision=data_args.dataset_revision,
        allow_outside_paths=data_args.allow_paths_outside_dataset,
    )
    songs = streamed.songs
    limits = {"validation": data_args.max_eval_samples, "test": data_args.max_predict_samples}
    for split_name in songs:
        songs[split_name] = select_songs(songs[split_name], limits[split_name], data_args.split_seed)
    return streamed, songs, list(streamed.labels.names), streamed.labels.multi_label


def streamed_train_slices(streamed, data_args: DataTrainingArguments, config, training_args: LCATrainingArguments):
    """This process's endless stream of training slices, cut by the model's slicing rule (`config.sampling_rate`,
    `slice_seconds`, `slice_remainder`) and shuffled with `--data_seed` (else `--seed`)."""
    from ..data.streaming import SongSlicer, StreamedSlices, stream_slices

    slicer = SongSlicer(
        streamed.labels,
        data_args.audio_column_name,
        data_args.song_column_name,
        config.sampling_rate,
        config.slice_seconds,
        data_args.slice_overlap_seconds,
        config.slice_remainder,
        streamed.base_dir,
        data_args.allow_paths_outside_dataset,
    )
    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    rank, world_size = training_args.process_index, training_args.world_size
    slices = stream_slices(
        streamed.train,
        slicer,
        rank=rank,
        world_size=world_size,
        seed=seed,
        shuffle_buffer_size=data_args.shuffle_buffer_size,
    )
    return StreamedSlices(
        slices, f"--dataset_name {data_args.dataset_name} --streaming, process {rank} of {world_size}"
    )


class StreamedLCATrainer(LCATrainer):
    """`LCATrainer` on a training stream that `split_dataset_by_node` already split between the processes: its
    DataLoader is not split again by accelerate, and its batches go through `train_collator`: the run's collator with
    no song index (streamed songs are not known up front; evaluation keeps the run's collator and index)."""

    def __init__(self, *args, **kwargs):
        from ..data.streaming import UnindexedSongs

        super().__init__(*args, **kwargs)
        collator = self.data_collator
        self.train_collator = SliceCollator(collator.feature_extractor, UnindexedSongs(), collator.num_tags)

    def get_train_dataloader(self):
        from ..data.streaming import streamed_dataloader

        return streamed_dataloader(self.train_dataset, self._train_batch_size, self.train_collator, self.args)


def select_songs(songs: datasets.Dataset, max_songs: int | None, seed: int) -> datasets.Dataset:
    """At most `max_songs` songs, drawn with `seed` (the `--max_*_samples` flags count songs, not slices)."""
    if max_songs is None or max_songs >= len(songs):
        return songs
    return songs.shuffle(seed=seed).select(range(max_songs))


def label_names_of(songs: datasets.DatasetDict) -> list[str]:
    """The class names (a `ClassLabel` column) or the tag names (a `List(ClassLabel)` column: multi-label)."""
    feature = songs["train"].features["label"]
    if is_tagging(songs):
        feature = feature.feature
    if not hasattr(feature, "names"):
        raise ValueError(
            f"the dataset's `label` column must be a ClassLabel (classes) or a list of ClassLabel (tags), got {feature}."
        )
    return list(feature.names)


def is_tagging(songs: datasets.DatasetDict) -> bool:
    """True when every song carries a list of tags (multi-label tagging) instead of one class."""
    return isinstance(getattr(songs["train"].features["label"], "feature", None), datasets.ClassLabel)


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
    model_args: ModelArguments,
    label_names: list[str],
    slice_seconds: float | None,
    multi_label: bool = False,
    defaults: dict | None = None,
):
    """A new model's config: the model type's defaults, then `defaults` (a feature store's backbone and layers), the
    dataset's labels (and, for tags, the multi-label problem type with the mean of the slices as the song rule), then
    `--config_overrides`."""
    config_class, _ = MODEL_TYPES[model_args.model_type]
    kwargs = {
        **{key: (dict(value) if isinstance(value, dict) else value) for key, value in (defaults or {}).items()},
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "counterfactual": model_args.counterfactual,
        "problem_type": "multi_label_classification" if multi_label else "single_label_classification",
    }
    if multi_label:
        kwargs["song_aggregation"] = "mean"
    if slice_seconds is not None:
        kwargs["slice_seconds"] = slice_seconds
    allowed = set(inspect.signature(config_class.__init__).parameters) - {
        "self",
        "kwargs",
    }
    for key, value in parse_config_overrides(model_args.config_overrides).items():
        top, _, nested = key.partition(".")
        if top in LABEL_KEYS or top in ("counterfactual", "problem_type"):
            raise ValueError(f"--config_overrides cannot set {top!r}: it comes from the dataset or --counterfactual.")
        if top not in allowed:
            raise ValueError(
                f"--config_overrides: unknown field {top!r} for --model_type {model_args.model_type}; known fields: "
                f"{sorted(allowed)}."
            )
        if nested:
            if top != "backbone_config":
                raise ValueError(f"--config_overrides: {key!r}: only backbone_config has nested fields.")
            from configuration_genremert import MERT_V1_95M_BACKBONE

            backbone = kwargs.setdefault("backbone_config", dict(MERT_V1_95M_BACKBONE))
            backbone[nested] = value
        else:
            kwargs[top] = value
    if multi_label and kwargs.get("song_aggregation") != "mean":
        raise ValueError(
            f"--config_overrides song_aggregation={kwargs.get('song_aggregation')!r}: a tagging model scores a song by "
            "the mean of its slices' probabilities; a majority vote has no meaning for independent tags."
        )
    try:
        return config_class(**kwargs)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"--config_overrides {model_args.config_overrides!r} gives an invalid {config_class.__name__}: {error}"
        ) from error


def load_or_build_model(
    model_args: ModelArguments,
    label_names: list[str],
    slice_seconds: float | None,
    multi_label: bool = False,
    config_defaults: dict | None = None,
):
    """The model to train: loaded from `--model_name_or_path` (labels checked) or built new (`config_defaults` under
    `--config_overrides`); MERT weights loaded."""
    _, model_class = MODEL_TYPES[model_args.model_type]
    hub_kwargs = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
    }
    if model_args.model_name_or_path is not None:
        config = load_pretrained(
            AutoConfig, model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code, **hub_kwargs
        )
        if config.model_type != model_args.model_type:
            raise ValueError(
                f"--model_name_or_path {model_args.model_name_or_path} holds a {config.model_type!r} model, but "
                f"--model_type is {model_args.model_type!r}."
            )
        transfer = model_args.finetune in ("head", "all")
        id2label = {int(k): v for k, v in (config.id2label or {}).items()}
        new_labels = [id2label[i] for i in sorted(id2label)] != list(label_names)
        if transfer:
            source_labels = [id2label[i] for i in sorted(id2label)]
            config.num_labels = len(label_names)
            config.id2label = dict(enumerate(label_names))
            config.label2id = {name: i for i, name in enumerate(label_names)}
            config.finetuned_from = {
                "model": model_args.model_name_or_path,
                "finetune": model_args.finetune,
                "labels": source_labels,
            }
        else:
            check_label_names(config, label_names, f"--model_name_or_path {model_args.model_name_or_path}")
        config.counterfactual = model_args.counterfactual
        if slice_seconds is not None:
            config.slice_seconds = float(slice_seconds)
        if (config.problem_type == "multi_label_classification") != multi_label:
            if not transfer:
                raise ValueError(
                    f"--model_name_or_path {model_args.model_name_or_path} is a "
                    f"{config.problem_type or 'single_label_classification'} model, but the dataset is "
                    f"{'multi-label (tags)' if multi_label else 'single-label (classes)'}; use --finetune head/all to "
                    "transfer it."
                )
            config.problem_type = "multi_label_classification" if multi_label else "single_label_classification"
            source_rule = (config.song_aggregation, config.vote_threshold)
            if multi_label:
                config.song_aggregation, config.vote_threshold = "mean", None
            else:  # a tagger's mean of the slices' probabilities becomes the single-label majority vote
                config.song_aggregation, config.vote_threshold = "vote", None
            if (config.song_aggregation, config.vote_threshold) != source_rule:
                logger.warning(
                    f"--finetune {model_args.finetune}: {model_args.model_name_or_path} scores songs with "
                    f"song_aggregation={source_rule[0]!r}, vote_threshold={source_rule[1]!r}; this "
                    f"{'multi-label' if multi_label else 'single-label'} dataset uses song_aggregation="
                    f"{config.song_aggregation!r}, vote_threshold=None, and the saved model keeps that rule."
                )
        model, loading_info = model_class.from_pretrained(  # our own class: the source's code files are never imported
            model_args.model_name_or_path,
            config=config,
            ignore_mismatched_sizes=transfer,
            output_loading_info=True,
            **hub_kwargs,
        )
        if transfer:
            check_transfer_shapes(model, loading_info.get("mismatched_keys") or (), model_args)
            prepare_transfer(model, model_args.finetune, new_head=new_labels)
    else:
        config = build_config(model_args, label_names, slice_seconds, multi_label, config_defaults)
        model = model_class(config)
    if model_args.backbone_name_or_path is not None:
        load_mert_weights(
            model,
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


def check_transfer_shapes(model, mismatched_keys, model_args: ModelArguments) -> None:
    """Refuses a transfer whose checkpoint tensors differ in shape from the model its config builds anywhere but in
    the output classifier (`model.output_classifier()`, the only layer a new label set changes): such weights do not
    match their own config, and loading them would silently re-initialise (and with `--finetune head` freeze) random
    layers. `mismatched_keys` is `from_pretrained(..., output_loading_info=True)`'s `(name, checkpoint shape, model
    shape)` triples."""
    classifier = model.output_classifier()
    prefix = next(name for name, module in model.named_modules() if module is classifier)
    allowed = {f"{prefix}.{name}" if prefix else name for name in classifier.state_dict()}
    refused = sorted(
        (str(name), tuple(checkpoint_shape), tuple(model_shape))
        for name, checkpoint_shape, model_shape in mismatched_keys
        if name not in allowed
    )
    if refused:
        listed = "; ".join(f"{name}: checkpoint {source}, config.json {target}" for name, source, target in refused)
        raise ValueError(
            f"--model_name_or_path {model_args.model_name_or_path} (--finetune {model_args.finetune}): "
            f"{len(refused)} tensor(s) of the checkpoint do not have the shape its config.json gives them ({listed}). "
            f"Only the output classifier ({', '.join(sorted(allowed))}) may change size in a transfer; the weights do "
            "not match their config: use the config.json they were saved with."
        )


def prepare_transfer(model, mode: str, new_head: bool) -> None:
    """Transfer learning from a model of another label set: a new classifier (re-initialised whenever the labels
    differ, even when their number is the same); with `mode="head"` every other parameter is frozen and BatchNorm
    layers stay in eval mode, with `"all"` everything trains (a frozen backbone stays frozen)."""
    classifier = model.output_classifier()
    if new_head:
        with torch.no_grad():
            if getattr(model.config, "initialization", "pytorch") == "keras":
                torch.nn.init.xavier_uniform_(classifier.weight)
                torch.nn.init.zeros_(classifier.bias)
            else:
                classifier.reset_parameters()  # PyTorch's default, the models' own rule
    if mode == "head":
        model.requires_grad_(False)
        classifier.requires_grad_(True)
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                # A frozen feature extractor: its BatchNorm layers stay in eval mode (running statistics used, not
                # updated), whatever mode the Trainer puts the model in; only the classifier changes.
                module.train = lambda mode=True, module=module: torch.nn.Module.train(module, False)
                module.eval()
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    logger.info(f"--finetune {mode}: {len(trainable)} trainable parameter tensors ({', '.join(trainable[:4])}, ...).")


def resolve_checkpoint(training_args: LCATrainingArguments, label_names: list[str]) -> str | None:
    """`--resume_from_checkpoint`: a folder, or `last`/`true` for the newest complete `checkpoint-*` in
    `--output_dir`. The checkpoint's labels are checked against the dataset before anything is trained."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("false", "none", ""):
        last = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
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
        problem = checkpoint_problem(checkpoint)
        if problem is not None:
            raise ValueError(
                f"--resume_from_checkpoint {checkpoint} cannot be resumed from: {problem}. Resume from an earlier "
                "checkpoint (--resume_from_checkpoint last picks the newest good one)."
            )
    config_file = os.path.join(checkpoint, "config.json")
    if not os.path.isfile(config_file):
        raise ValueError(f"--resume_from_checkpoint {checkpoint}: no config.json there; not a Trainer checkpoint.")
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
