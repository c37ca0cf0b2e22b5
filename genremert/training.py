"""The training script's library: load the songs, build or load the model, train with `LCATrainer`, evaluate at frame
and song level, write the output folder. `run_classification.py` is its command line (see its docstring)."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import os
import sys

import datasets
import torch
import transformers
from transformers import AutoConfig, set_seed
from transformers.trainer_utils import get_last_checkpoint

from modeling_lca_genremert import is_multi_label

from . import MODEL_CLASSES as MODEL_TYPES
from . import build_feature_extractor, music_datasets
from .lca_metrics import (
    LCAMetrics,
    choose_vote_threshold,
    compute_split_metrics,
    softmax,
    split_predictions,
    write_split_reports,
)
from .lca_trainer import (
    LCATrainer,
    LCATrainingArguments,
    NonFiniteLossError,
    SliceCollator,
)
from .mert_weights import load_mert_weights
from .run_folder import (  # noqa: F401 - last_complete_checkpoint and ChecksumCallback are part of this API
    ChecksumCallback,
    OutputDirLock,
    check_checkpoint_matches_model,
    check_output_dir,
    checkpoint_problem,
    last_complete_checkpoint,
    non_finite_tensors,
    whole_run_train_loss,
)
from .shortcut import resolve_bias, shortcut_metrics, shortcut_rates
from .tagging_metrics import TaggingMetrics, write_tagging_reports
from .training_args import (  # noqa: F401 - re-exported for the scripts and tests
    DATASETS,
    DEFAULT_SPLITS,
    DataTrainingArguments,
    ModelArguments,
    parse_arguments,
    parse_config_overrides,
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
        from .your_data import load_dataset_songs

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
            allowed = set(inspect.signature(music_datasets.load_synthetic).parameters)
            unknown = sorted(set(options) - allowed)
            if unknown:
                raise ValueError(f"--synthetic_options: unknown argument(s) {unknown}; allowed: {sorted(allowed)}.")
        options.setdefault("split", split)
        if data_args.bias_class is not None:
            options["bias_class"] = int(data_args.bias_class)
        if data_args.data_dir is not None:
            options.setdefault("cache_dir", data_args.data_dir)
        return music_datasets.load_synthetic(**options)
    loader_name = f"load_{data_args.dataset}"
    loader = getattr(music_datasets, loader_name, None)
    if loader is None:
        raise ValueError(
            f"music_datasets has no {loader_name}(): this version cannot load --dataset {data_args.dataset}."
        )
    extra = {}
    if data_args.dataset == "gtzan":
        extra["gtzan_revision"] = data_args.gtzan_revision
    if data_args.dataset in ("gtzan", "magnatagatune") and data_args.allow_missing_files:
        extra["allow_missing_files"] = True
    return loader(data_args.data_dir, split=split, seed=seed, stems_dir=data_args.stems_dir, **extra)


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
    model_args: ModelArguments, label_names: list[str], slice_seconds: float | None, multi_label: bool = False
):
    """A new model's config: the model type's defaults, the dataset's labels (and, for tags, the multi-label problem
    type with the mean of the slices as the song rule), then `--config_overrides`."""
    config_class, _ = MODEL_TYPES[model_args.model_type]
    kwargs = {
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
    model_args: ModelArguments, label_names: list[str], slice_seconds: float | None, multi_label: bool = False
):
    """The model to train: loaded from `--model_name_or_path` (labels checked) or built new; MERT weights loaded."""
    _, model_class = MODEL_TYPES[model_args.model_type]
    hub_kwargs = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
    }
    if model_args.model_name_or_path is not None:
        config = AutoConfig.from_pretrained(model_args.model_name_or_path, trust_remote_code=True, **hub_kwargs)
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
            if multi_label:
                config.song_aggregation, config.vote_threshold = "mean", None
        model = model_class.from_pretrained(
            model_args.model_name_or_path, config=config, ignore_mismatched_sizes=transfer, **hub_kwargs
        )
        if transfer:
            prepare_transfer(model, model_args.finetune, new_head=new_labels)
    else:
        config = build_config(model_args, label_names, slice_seconds, multi_label)
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
    aggregation: str = "vote",
    bias_class: int | None = None,
) -> tuple[dict, float | None]:
    """Predicts one split (all processes), scores it once on the gathered slices, writes its reports.

    Songs are scored by `aggregation` (the model's `config.song_aggregation`, the rule of its pipeline). With
    `choose_threshold` (and `"vote"`), the vote threshold is chosen on this split (validation) and returned. A
    multi-label model is scored by ROC-AUC / PR-AUC (frame, and song = mean of its slices), per tag in
    `<split>_tag_report.json`, with the tags that cannot be scored named in a warning.
    """
    output = trainer.predict(slices, metric_key_prefix=split_name)
    logits, counterfactual_logits, labels, song_index = split_predictions(output.predictions, output.label_ids)
    if is_multi_label(trainer.accelerator.unwrap_model(trainer.model).config):
        metrics = dict(output.metrics)
        if trainer.is_world_process_zero():
            scores = write_tagging_reports(trainer.args.output_dir, split_name, logits, labels, song_index, label_names)
            for level in ("frame", "song"):
                if scores[f"{level}_excluded_tags"]:
                    logger.warning(
                        f"{split_name}: {len(scores[f'{level}_excluded_tags'])} tag(s) have no positive or no negative "
                        f"{level} in this split and are left out of the {level}-level macro AUCs: "
                        f"{', '.join(scores[f'{level}_excluded_tags'])}."
                    )
        return metrics, None
    num_labels = len(label_names)
    if aggregation != "vote":
        vote_threshold = None
    elif choose_threshold:
        vote_threshold, _ = choose_vote_threshold(softmax(logits), labels, song_index, num_labels)
    metrics = {k: v for k, v in output.metrics.items()}
    if bias_class is not None:
        metrics.update(
            {
                f"{split_name}_{k}": v
                for k, v in shortcut_rates(logits, labels, song_index, bias_class, aggregation).items()
            }
        )
    scores = compute_split_metrics(
        logits, labels, song_index, num_labels, counterfactual_logits, vote_threshold, aggregation
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
            aggregation,
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
        # The same seed gives slightly different results with another number of torch threads (float reductions).
        "torch_num_threads": torch.get_num_threads(),
    }
    path = os.path.join(output_dir, "run_args.json")
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(arguments, file, indent=2, sort_keys=True, default=str)
    os.replace(temporary, path)
    return path


def main(argv: list[str] | None = None) -> dict:
    """Runs what `--do_train/--do_eval/--do_predict` ask for; returns the content of `all_results.json`.

    A folder holding a finished run is refused unless `--overwrite_output_dir`; the folder is locked while the run
    writes it (one lock per run, taken by the main process)."""
    model_args, data_args, training_args = parse_arguments(argv)
    check_output_dir(
        training_args.output_dir,
        training_args.do_train,
        training_args.overwrite_output_dir,
        training_args.resume_from_checkpoint,
    )
    lock = OutputDirLock(training_args.output_dir) if training_args.process_index == 0 else contextlib.nullcontext()
    with lock:
        results = run(model_args, data_args, training_args)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # every rank leaves together: none exits while another still writes
    return results


def end_process_group() -> None:
    """The end of a multi-process script: wait for every rank, then close the process group, so that no rank tears its
    communication threads down while another still works (a rank that left early could abort at exit)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def run(model_args, data_args, training_args: LCATrainingArguments) -> dict:
    """The body of `main`, on parsed arguments."""
    setup_logging(training_args)
    # Slice rows are decoded on the fly; the song index travels with the labels for song-level voting.
    training_args.remove_unused_columns = False
    training_args.label_names = ["labels", "song_index"]
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # nothing to pin to without an accelerator
    logger.warning(
        f"process rank {training_args.process_index} of {training_args.world_size}, device {training_args.device}, "
        f"distributed: {training_args.parallel_mode.value}, bf16: {training_args.bf16}, fp16: {training_args.fp16}"
    )
    set_seed(training_args.seed)

    with training_args.main_process_first(desc="load and slice the songs"):
        songs = load_songs(data_args, data_args.split_seed, training_args.output_dir)
        label_names = label_names_of(songs)
        multi_label = is_tagging(songs)
        if multi_label and data_args.bias_class is not None:
            raise ValueError(
                f"--bias_class {data_args.bias_class!r}: the shortcut protocol scores one class per song; the "
                f"{data_args.dataset} songs carry tags (multi-label)."
            )
        limits = {
            "train": data_args.max_train_samples,
            "validation": data_args.max_eval_samples,
        }
        for split_name in songs:
            limit = limits.get(split_name, data_args.max_predict_samples)
            songs[split_name] = select_songs(songs[split_name], limit, data_args.split_seed)
        checkpoint = resolve_checkpoint(training_args, label_names)
        model = load_or_build_model(model_args, label_names, data_args.slice_seconds, multi_label)
        if checkpoint is not None:
            check_checkpoint_matches_model(checkpoint, model)
        # The song rule travels in the config: the pipeline slices and scores songs exactly as evaluated here.
        model.config.slice_overlap_seconds = float(data_args.slice_overlap_seconds)
        slice_seconds = model.config.slice_seconds
        bias_class, bias_noise, noisy_songs = resolve_bias(data_args, songs, label_names)
        if data_args.audio_cache_dir is not None:
            # Decode every sample of every song now: a bad song is named before training, not hours into it.
            music_datasets.fill_cache(songs, model.config.sampling_rate, data_args.audio_cache_dir)
        slices = music_datasets.slice_songs(
            songs,
            model.config.sampling_rate,
            slice_seconds,
            data_args.slice_overlap_seconds,
            keep_remainder=model.config.slice_remainder == "end",
            cache_dir=data_args.audio_cache_dir,
            noise=bias_noise,
            noisy_songs=noisy_songs,
        )
    all_song_ids = sorted({song_id for split in songs.values() for song_id in split["song_id"]})
    song_index_of = {song_id: i for i, song_id in enumerate(all_song_ids)}
    feature_extractor = build_feature_extractor(model.config)
    logger.info(
        "songs / slices per split: "
        + ", ".join(f"{name} {len(songs[name])}/{len(slices[name])}" for name in songs)
        + f"; slices of {slice_seconds} s with {data_args.slice_overlap_seconds} s overlap"
    )

    vote_threshold = data_args.parsed_vote_threshold()
    needs_validation = training_args.do_eval or training_args.eval_strategy != "no" or vote_threshold == "auto"
    trainer = LCATrainer(
        callbacks=[ChecksumCallback()],
        model=model,
        args=training_args,
        train_dataset=slices["train"] if training_args.do_train else None,
        eval_dataset=slices["validation"] if needs_validation else None,
        processing_class=feature_extractor,
        data_collator=SliceCollator(feature_extractor, song_index_of, len(label_names) if multi_label else None),
        compute_metrics=TaggingMetrics(label_names) if multi_label else LCAMetrics(num_labels=len(label_names)),
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
        bad = non_finite_tensors(model)
        if bad:  # e.g. an inf BatchNorm running variance: the loss guard cannot see it
            raise NonFiniteLossError(
                f"training ended with NaN/inf in the model's state ({', '.join(bad[:5])}); the final model is not saved."
            )
        trainer.save_model()  # the final model folder: weights, config (auto_map), preprocessor, code files
        metrics = dict(train_result.metrics)
        if checkpoint is not None:
            metrics["train_loss"] = whole_run_train_loss(trainer, checkpoint, metrics["train_loss"])
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
            aggregation=model.config.song_aggregation,
            bias_class=bias_class,
        )
        chosen_threshold = threshold
        metrics["eval_songs"] = len(songs["validation"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        log_to_integrations(trainer, metrics)
        results.update(metrics)
    save_song_rule(model, chosen_threshold, training_args)

    if training_args.do_predict:
        for split_name in [name for name in songs if name.startswith("test")]:
            metrics, _ = evaluate_split(
                trainer,
                slices[split_name],
                split_name,
                label_names,
                chosen_threshold,
                aggregation=model.config.song_aggregation,
                bias_class=bias_class,
            )
            metrics[f"{split_name}_songs"] = len(songs[split_name])
            trainer.log_metrics(split_name, metrics)
            trainer.save_metrics(split_name, metrics)
            log_to_integrations(trainer, metrics)
            results.update(metrics)
        shortcut = shortcut_metrics(results)
        if shortcut:
            trainer.save_metrics("shortcut", shortcut)
            log_to_integrations(trainer, shortcut)
            results.update(shortcut)
    return results


def log_to_integrations(trainer, metrics: dict) -> None:
    """The final evaluation and test scores to TensorBoard (and every other `report_to` integration) at the last
    step, next to the training curves."""
    numbers = {key: float(value) for key, value in metrics.items() if isinstance(value, (int, float))}
    if numbers:
        trainer.log(numbers)


def save_song_rule(model, vote_threshold: float | None, training_args: LCATrainingArguments) -> None:
    """Put the validation-chosen vote threshold into the config, and rewrite the saved model's `config.json` with it,
    so that the pipeline of the output folder applies the rule whose song figures `all_results.json` reports."""
    model.config.vote_threshold = None if vote_threshold is None else float(vote_threshold)
    saved_config = os.path.join(training_args.output_dir, "config.json")
    if training_args.do_train and os.path.isfile(saved_config) and training_args.should_save:
        model.config.save_pretrained(training_args.output_dir)
