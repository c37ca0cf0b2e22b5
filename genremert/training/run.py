"""The training script's library: load the songs, build or load the model, train with `LCATrainer`, evaluate at frame
and song level, write the output folder. `run_classification.py` is its command line (see its docstring)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import datasets
import torch
import transformers
from transformers import set_seed

from modeling_lca_genremert import build_feature_extractor, is_multi_label

from ..data.attention_audio import slice_frame_roles
from ..data.audio_files import _audio_path, audio_num_samples
from ..evaluation.attention_audio_mass import audio_attention_masses, time_attention_reason
from ..evaluation.metrics import (
    LCAMetrics,
    choose_vote_threshold,
    compute_split_metrics,
    softmax,
    split_predictions,
    write_split_reports,
)
from ..evaluation.shortcut import shortcut_metrics, shortcut_rates
from ..evaluation.tagging_metrics import TaggingMetrics, write_tagging_reports
from .arguments import (
    parse_arguments,
)
from .frozen_backbone import configure_frozen_backbone
from .preparation import (
    StreamedLCATrainer,
    load_or_build_model,
    prepare_songs,
    prepare_streamed_songs,
    resolve_checkpoint,
    slice_run_songs,
    streamed_train_slices,
)
from .run_folder import (
    ChecksumCallback,
    OutputDirLock,
    check_checkpoint_matches_model,
    check_output_dir,
    non_finite_tensors,
    whole_run_train_loss,
)
from .store_training import StoreCollator, attach_store_backbone, check_store_matches, open_store, store_slices
from .trainer import (
    LCATrainer,
    LCATrainingArguments,
    NonFiniteLossError,
    SliceCollator,
)


logger = logging.getLogger(__name__)

# What a user can fix (a flag, a file, the data, a diverging loss): `run_classification.py` reports these as one line
# `error: <message>` and exit status 2; any other exception is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NonFiniteLossError)
# Below this many training songs a class (or tag) is named in a warning: it can hardly be learned.
MIN_TRAIN_SONGS_PER_CLASS = 5
# A single-label test accuracy at most this far above 1/num_classes is reported as chance level.
CHANCE_MARGIN = 0.05


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
    frame_roles=None,
) -> tuple[dict, float | None]:
    """Predicts one split (all processes), scores it once on the gathered slices, writes its reports.

    Songs are scored by `aggregation` (the model's `config.song_aggregation`, the rule of its pipeline). With
    `choose_threshold` (and `"vote"`), the vote threshold is chosen on this split (validation) and returned. A
    multi-label model is scored by ROC-AUC / PR-AUC (frame, and song = mean of its slices), per tag in
    `<split>_tag_report.json`, with the tags that cannot be scored named in a warning. With `frame_roles` (the role
    frames of every slice, `(slices, frames)`: a dataset that knows them), the mass of the main and the counterfactual
    attention over time on each role is added (`<split>_main_mass_<role>`, `<split>_cf_mass_<role>`).
    """
    output = trainer.predict(slices, metric_key_prefix=split_name)
    logits, counterfactual_logits, labels, song_index = split_predictions(output.predictions, output.label_ids)
    attention_metrics = {} if frame_roles is None else attention_mass_metrics(trainer, slices, frame_roles, split_name)
    if is_multi_label(trainer.accelerator.unwrap_model(trainer.model).config):
        metrics = {**output.metrics, **attention_metrics}
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
    metrics = {**output.metrics, **attention_metrics}
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


def split_frame_roles(songs, slices, split_name: str, sampling_rate: int, slice_seconds: float):
    """The role frames `(slices, frames)` of every slice of a split whose songs know them (a `frame_roles` column, as
    `load_synthetic(attention_audio=...)` gives), else None."""
    if "frame_roles" not in songs[split_name].column_names:
        return None
    return slice_frame_roles(songs[split_name], slices[split_name], sampling_rate, slice_seconds)


def attention_mass_metrics(trainer: LCATrainer, slices, frame_roles, split_name: str) -> dict:
    """`<split>_main_mass_<role>` / `<split>_cf_mass_<role>`: where the model's attention over time sits on a split
    with frame roles. The trainer's predictions carry no attentions, so this is a second, attention-only pass over the
    whole split on every process (no collective: every rank gets the same figures). `{}`, with the reason logged, for a
    model whose attention is not over time."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    reason = time_attention_reason(model.config)
    if reason is not None:
        logger.info(f"{split_name}: no attention mass ({reason}).")
        return {}
    autocast = None if trainer.args.eval_autocast == "none" else getattr(torch, trainer.args.eval_autocast)
    masses = audio_attention_masses(
        model,
        slices,
        frame_roles,
        trainer.data_collator,
        trainer.args.per_device_eval_batch_size,
        trainer.args.device,
        autocast,
    )
    return {f"{split_name}_{key}": value for key, value in masses.items()}


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
    # One lock per run folder: the global main process's, or each node's with --node_local_storage (one folder each).
    local = data_args.node_local_storage and training_args.local_process_index == 0
    lock = (
        OutputDirLock(training_args.output_dir, break_stale=data_args.break_stale_lock)
        if training_args.process_index == 0 or local
        else contextlib.nullcontext()
    )
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


def script_main(argv: list[str] | None = None, entry=None) -> int:
    """The entry point of `run_classification.py` (and, with `entry`, of `extract_features.py`): `main` (or `entry`),
    then the process group closed; returns the exit status.

    A mistake the user can fix (`USER_ERRORS`: a bad flag, a missing or damaged file, bad data, a diverging loss) is
    printed as `error: <message>` on stderr with exit status 2, as argparse does for a bad flag; any other exception is
    a bug and keeps its traceback. `main` itself raises, for callers in Python."""
    try:
        (entry or main)(argv)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    end_process_group()
    return 0


def few_training_songs_warning(
    labels, label_names: list[str], multi_label: bool, minimum: int = MIN_TRAIN_SONGS_PER_CLASS
) -> str | None:
    """The warning for classes (tags) with fewer than `minimum` training songs, naming each with its count, or None.
    `labels`: one class id per song, or one list of tag ids per song (`multi_label`)."""
    counts = [0] * len(label_names)
    for label in labels:
        for index in label if multi_label else [label]:
            counts[int(index)] += 1
    few = [(name, count) for name, count in zip(label_names, counts) if count < minimum]
    if not few:
        return None
    kind = "tags" if multi_label else "classes"
    return (
        f"few training songs: {len(few)} of {len(label_names)} {kind} have fewer than {minimum} "
        f"({', '.join(f'{name}: {count}' for name, count in few)}); the model can hardly learn them and their scores "
        "will be noisy. Give more songs (or a larger --max_train_samples, if set)."
    )


def short_recordings_warning(songs, sampling_rate: int, slice_seconds: float, examples: int = 5) -> str | None:
    """The warning for recordings shorter than one slice (they are zero-padded to one slice): their count per split
    and the first `examples` with their lengths, or None. `songs`: split name → songs (an `audio` path column)."""
    slice_samples = int(round(slice_seconds * sampling_rate))
    short, total = [], 0
    with ThreadPoolExecutor(8) as pool:
        for split_name, split in songs.items():
            table = split.with_format(None)
            paths = [_audio_path(cell, row) for row, cell in enumerate(table["audio"])]
            lengths = list(pool.map(lambda path: audio_num_samples(path, sampling_rate), paths))
            total += len(paths)
            short += [
                (split_name, song_id, length)
                for song_id, length in zip(table["song_id"], lengths)
                if 0 < length < slice_samples  # an empty recording gives no slice (slice_songs warns about it)
            ]
    if not short:
        return None
    per_split = {}
    for split_name, _, _ in short:
        per_split[split_name] = per_split.get(split_name, 0) + 1
    shown = ", ".join(
        f"{song_id} ({split_name}, {length / sampling_rate:.2f} s)" for split_name, song_id, length in short[:examples]
    ) + (f" and {len(short) - examples} more" if len(short) > examples else "")
    return (
        f"{len(short)} of {total} recordings are shorter than one {slice_seconds:g} s slice and are zero-padded to it "
        f"({', '.join(f'{name}: {count}' for name, count in per_split.items())}); e.g. {shown}. Padding is silence "
        "the model learns from: give longer recordings, or a shorter --slice_seconds."
    )


def chance_level_warning(split_name: str, metrics: dict, num_labels: int, margin: float = CHANCE_MARGIN) -> str | None:
    """The warning for a single-label split whose frame accuracy is at most `margin` above chance (1 / `num_labels`):
    the model did not learn. None otherwise (or when the split has no frame accuracy)."""
    accuracy = metrics.get(f"{split_name}_frame_accuracy")
    if accuracy is None or not math.isfinite(accuracy) or num_labels < 2:
        return None
    chance = 1.0 / num_labels
    if accuracy > chance + margin:
        return None
    song = metrics.get(f"{split_name}_song_accuracy")
    song_text = "" if song is None else f", song accuracy {song:.3f}"
    return (
        f"{split_name}: frame accuracy {accuracy:.3f}{song_text} is at chance level or below (1/{num_labels} = "
        f"{chance:.3f}, margin {margin:g}): the model did not learn. Train longer (--num_train_epochs), check --learning_rate, give "
        "more training songs, or check that the labels match the audio."
    )


def preparation_first(training_args: LCATrainingArguments, data_args, desc: str):
    """The context in which a run prepares its data (downloads, generated audio, decoded-audio cache, split files):
    the main process does it first while the others wait, then they read what it wrote. On one shared filesystem
    (the default) that is the global main process, once per run, also across nodes; with `--node_local_storage`
    each node's local main process, once per node (`TrainingArguments.main_process_first(local=...)`)."""
    return training_args.main_process_first(local=data_args.node_local_storage, desc=desc)


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

    store = to_attach = None
    with preparation_first(training_args, data_args, "load and slice the songs"):
        if data_args.streaming:  # the training split stays a stream; validation and test are song datasets
            streamed, songs, label_names, multi_label = prepare_streamed_songs(data_args, training_args)
        else:
            songs, label_names, multi_label = prepare_songs(data_args, training_args.output_dir)
        checkpoint = resolve_checkpoint(training_args, label_names)
        config_defaults = None
        if data_args.feature_store is not None:  # the backbone's weights are not read: the store holds its output
            if training_args.backbone_cache_dir is not None:
                raise ValueError("--feature_store and --backbone_cache_dir are two sources of features: pass one.")
            store, config_defaults = open_store(data_args, model_args)
        model = load_or_build_model(
            model_args if store is None else dataclasses.replace(model_args, backbone_name_or_path=None),
            label_names,
            data_args.slice_seconds,
            multi_label,
            config_defaults,
        )
        if checkpoint is not None:
            check_checkpoint_matches_model(checkpoint, model)
        # The song rule travels in the config: the pipeline slices and scores songs exactly as evaluated here.
        model.config.slice_overlap_seconds = float(data_args.slice_overlap_seconds)
        slice_seconds = model.config.slice_seconds
        slices, bias_class, _ = slice_run_songs(songs, data_args, model.config, label_names)
        if data_args.streaming and training_args.do_train:
            slices = {**slices, "train": streamed_train_slices(streamed, data_args, model.config, training_args)}
        if store is not None:
            to_attach = check_store_matches(store, model, data_args, model_args)
            slices = store_slices(slices, store, model)
    # GenreMERT: the backbone's precision and feature cache (--backbone_dtype, --backbone_cache), logged with reasons.
    backbone_choices = configure_frozen_backbone(model, model_args, training_args, slices, data_args.feature_store)
    if training_args.process_index == 0:  # tiny or odd data: said once, before training
        checks = [short_recordings_warning(songs, model.config.sampling_rate, slice_seconds)]
        if training_args.do_train and not data_args.streaming:
            train_labels = songs["train"].with_format(None)["label"]
            checks.insert(0, few_training_songs_warning(train_labels, label_names, multi_label))
        for warning in checks:
            if warning:
                logger.warning(warning)
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
    trainer = (StreamedLCATrainer if data_args.streaming else LCATrainer)(
        callbacks=[ChecksumCallback()],
        model=model,
        args=training_args,
        train_dataset=slices["train"] if training_args.do_train else None,
        eval_dataset=slices["validation"] if needs_validation else None,
        processing_class=feature_extractor,
        data_collator=(SliceCollator if store is None else StoreCollator)(
            feature_extractor, song_index_of, len(label_names) if multi_label else None
        ),
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
        "feature_store": data_args.feature_store,
        **backbone_choices,
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
        if to_attach is not None:  # a head trained on a store: saved with the store's backbone, a complete model
            attach_store_backbone(model, store, to_attach, model_args)
        trainer.save_model()  # the final model folder: weights, config (auto_map), preprocessor, code files
        metrics = dict(train_result.metrics)
        if checkpoint is not None:
            metrics["train_loss"] = whole_run_train_loss(trainer, checkpoint, metrics["train_loss"])
        if not data_args.streaming:  # a stream's songs are never counted
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
            frame_roles=split_frame_roles(songs, slices, "validation", model.config.sampling_rate, slice_seconds),
        )
        chosen_threshold = threshold
        metrics["eval_songs"] = len(songs["validation"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        log_to_integrations(trainer, metrics)
        results.update(metrics)
    save_song_rule(model, chosen_threshold, training_args)

    if training_args.do_predict:
        test_splits = [name for name in songs if name.startswith("test")]
        for split_name in test_splits:
            metrics, _ = evaluate_split(
                trainer,
                slices[split_name],
                split_name,
                label_names,
                chosen_threshold,
                aggregation=model.config.song_aggregation,
                bias_class=bias_class,
                frame_roles=split_frame_roles(songs, slices, split_name, model.config.sampling_rate, slice_seconds),
            )
            metrics[f"{split_name}_songs"] = len(songs[split_name])
            if split_name == test_splits[0] and not multi_label and trainer.is_world_process_zero():
                warning = chance_level_warning(split_name, metrics, len(label_names))
                if warning:  # the first test split is the clean one (test_noisy and the like come after it)
                    logger.warning(warning)
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
