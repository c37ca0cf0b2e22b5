"""`LCATrainer`, a `transformers.Trainer` that trains with the LCA loss (`lca_loss`) in two steps.

Two-step training: while `floor(state.epoch) < cf_warmup_epochs` (the first `cf_warmup_epochs` epochs) the loss is
`λ_ce_main·CE(y)` only. The counterfactual terms are then computed on detached tensors, for logging only, so the
counterfactual branch receives no gradient (its `.grad` stays `None`) and torch optimizers skip it entirely: no
update, no Adam moments, no weight decay. The schedule reads only the Trainer's state, which a checkpoint restores,
so a run resumed inside or after the warm-up continues exactly the same schedule. Under DDP the branch is unused
during the warm-up, which needs `ddp_find_unused_parameters=True` (the Trainer's default for `PreTrainedModel`s;
setting it to `False` with a warm-up is refused).

Logging: every term (unweighted, before the sign of Eq. 1) is averaged over the logging window and logged as
`loss_ce_main`, `loss_effect`, `loss_ce_cf`, `loss_ent_cf`, `loss_ent_main`, `loss_att` for training and with the
`eval_` / `test_` prefix for evaluation, next to `cf_warmup` (1 while the warm-up is on).

Evaluation of the counterfactual branch (paper Table 4): the models compute the branch only in train mode; with
`evaluate_counterfactual=True` the trainer asks for it at evaluation time as well (the forward keyword
`return_counterfactual=True` when the model declares it, otherwise by flagging only the top-level module as
training, which leaves dropout and batch norm in eval mode), so the eval loss has every term and the metrics get the
branch's logits. Random counterfactual attention at evaluation time draws from a forked RNG: evaluating never
changes the training run's random stream.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainingArguments
from transformers.utils import logging

from modeling_lca_genremert import check_labels, is_multi_label

from .lca_loss import (
    CF_WARMUP_MODES,
    EFFECT_TYPES,
    EXTRA_TERMS,
    LEARNED_ONLY_TERMS,
    LOSS_TERMS,
    attention_parameter_groups,
    effective_lca_weights,
    lca_gradient_norms,
    scheduled_lca_loss,
)


logger = logging.get_logger(__name__)


@dataclass
class LCATrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the LCA loss weights and the two-step schedule (flags of the same names).

    The weight defaults are the reference GTZAN LCA weights; with `counterfactual="none"` they are ignored and the
    loss is plain cross-entropy. Unlike `TrainingArguments`, `report_to` defaults to TensorBoard.
    """

    lambda_ce_main: float = field(
        default=0.7,
        metadata={"help": "Weight of CE(y), the main branch's cross-entropy."},
    )
    lambda_effect: float = field(default=1.0, metadata={"help": "Weight of CE(y_effect), the effect term."})
    lambda_ce_cf: float = field(
        default=0.6,
        metadata={"help": "Weight of CE(ỹ), the counterfactual cross-entropy."},
    )
    lambda_ent_cf: float = field(default=2.0, metadata={"help": "Weight of H(ỹ) (maximised: subtracted)."})
    lambda_ent_main: float = field(default=1.5, metadata={"help": "Weight of H(y) (maximised: subtracted)."})
    lambda_att: float = field(default=2.0, metadata={"help": "Weight of L1(A, Ã) (maximised: subtracted)."})
    cf_warmup_epochs: int = field(
        default=0,
        metadata={
            "help": "Two-step training: for this many epochs only λ_ce_main·CE(y) is on and the counterfactual "
            "branch gets no update (the paper uses 20)."
        },
    )
    cf_warmup_mode: str = field(
        default="freeze",
        metadata={
            "help": "How the branch waits during the warm-up: 'freeze' (no gradient, the optimizer skips it; ours) or "
            "'zero_gradients' (zero gradients that the optimizer still steps on, as the LCA reference: Adam's step "
            "count, hence its bias correction after the switch, then matches the reference's)."
        },
    )
    effect_type: str = field(
        default="softmax",
        metadata={"help": "y_effect: 'softmax' = softmax(y) − softmax(ỹ) (reference code) or 'logits' = y − ỹ (CAL)."},
    )
    log_lca_gradients: bool = field(
        default=False,
        metadata={
            "help": "At every logging step, log the L2 norm of each weighted Eq. 1 term's gradient on the main "
            "attention, the counterfactual attention and the rest of the model (lca_grad_<term>_<group>; one extra "
            "backward pass per term at those steps only): why LCA moves an attention, or does not."
        },
    )
    report_to: None | str | list[str] = field(
        default="tensorboard",
        metadata={"help": "Integrations to log to (TensorBoard by default, in <output_dir>/runs); 'none' for none."},
    )
    evaluate_counterfactual: bool = field(
        default=True,
        metadata={"help": "Also run the counterfactual branch at evaluation: its metrics (Table 4) and eval terms."},
    )
    backbone_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Frozen backbone (GenreMERT): store each slice's backbone hidden states here on the first pass and "
            "read them in later epochs and runs instead of running the backbone (genremert/backbone_cache.py)."
        },
    )
    backbone_cache_dtype: str = field(
        default="float16",
        metadata={"help": "Precision of the cached hidden states: float16 (half the disk) or float32 (exact runs)."},
    )
    eval_autocast: str = field(
        default="none",
        metadata={
            "help": "Evaluate and predict under torch.autocast of this dtype: 'bfloat16' (CPU or GPU: about 0.5× the "
            "time of float32 for GenreMERT on CPU, docs/models.md) or 'float16' (GPU); 'none' runs float32."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train in an --output_dir that already holds a finished run (its model and results are replaced). "
            "Without it, such a folder is refused; --resume_from_checkpoint continues an unfinished run instead."
        },
    )

    def __post_init__(self):
        for name in LOSS_TERMS:
            value = getattr(self, f"lambda_{name}")
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"`lambda_{name}` must be a finite number >= 0 (Eq. 1 carries the signs), got {value!r}."
                )
        if self.cf_warmup_epochs < 0:
            raise ValueError(f"`cf_warmup_epochs` must be >= 0, got {self.cf_warmup_epochs}.")
        if self.eval_autocast not in ("none", "bfloat16", "float16"):
            raise ValueError(f"`eval_autocast` must be 'none', 'bfloat16' or 'float16', got {self.eval_autocast!r}.")
        if self.cf_warmup_mode not in CF_WARMUP_MODES:
            raise ValueError(f"`cf_warmup_mode` must be one of {list(CF_WARMUP_MODES)}, got {self.cf_warmup_mode!r}.")
        if self.effect_type not in EFFECT_TYPES:
            raise ValueError(f"`effect_type` must be one of {list(EFFECT_TYPES)}, got {self.effect_type!r}.")
        if self.do_train and self.max_steps <= 0 and not self.num_train_epochs > 0:
            raise ValueError(
                f"--num_train_epochs must be > 0 to train (or set --max_steps > 0), got {self.num_train_epochs!r}."
            )
        super().__post_init__()

    @property
    def lca_weights(self) -> dict[str, float]:
        return {name: float(getattr(self, f"lambda_{name}")) for name in LOSS_TERMS}


# ----------------------------------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------------------------------


class SliceCollator:
    """Turns slice rows (`input_values`, `label`, `song_id`) into a model batch with the model's feature extractor.

    Returns `input_values` `(batch, samples)` (GenreMERT: normalised per slice), `attention_mask`, `labels`
    `(batch,)` and `song_index` `(batch,)`: the integer id of each slice's song from `song_index_of`, which the
    Trainer gathers with the labels so that song-level votes are counted after every process's slices are in.

    With `num_tags` (multi-label tagging), each row's `label` is the list of its tag ids (a `Sequence(ClassLabel)`
    column) and `labels` are float multi-hot targets `(batch, num_tags)`.
    """

    def __init__(self, feature_extractor, song_index_of: dict[str, int], num_tags: int | None = None):
        self.feature_extractor = feature_extractor
        self.song_index_of = song_index_of
        self.song_id_of = {index: song_id for song_id, index in song_index_of.items()}
        self.num_tags = num_tags

    def _labels(self, rows: list[dict]) -> torch.Tensor:
        if self.num_tags is None:
            return torch.tensor([int(row["label"]) for row in rows], dtype=torch.long)
        targets = torch.zeros(len(rows), self.num_tags)
        for i, row in enumerate(rows):
            tags = row["label"]
            if not isinstance(tags, (list, tuple)):
                raise ValueError(
                    f"slice of {row.get('song_id')!r}: a multi-label `label` must be the list of its tag ids, got "
                    f"{type(tags).__name__} {tags!r}."
                )
            for tag in tags:
                if not 0 <= int(tag) < self.num_tags:
                    raise ValueError(f"slice of {row.get('song_id')!r}: tag id {tag} is not in [0, {self.num_tags}).")
                targets[i, int(tag)] = 1.0
        return targets

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        waveforms = [row["input_values"] for row in rows]
        lengths = {len(waveform) for waveform in waveforms}
        if len(lengths) != 1:
            raise ValueError(f"slices of one batch must have the same length, got lengths {sorted(lengths)}.")
        features = self.feature_extractor(
            waveforms, sampling_rate=self.feature_extractor.sampling_rate, return_tensors="pt"
        )
        # A waveform extractor gives `input_values` (+ `attention_mask`); a spectrogram backbone's gives its features
        # (`input_values` for AST, `input_features` for Whisper).
        batch = {key: value.float() if value.is_floating_point() else value for key, value in features.items()}
        batch["labels"] = self._labels(rows)
        song_indices = []
        for row in rows:
            song_id = row["song_id"]
            if song_id not in self.song_index_of:
                raise ValueError(f"slice of unknown song_id {song_id!r}: it is not in the song index of this run.")
            song_indices.append(self.song_index_of[song_id])
        batch["song_index"] = torch.tensor(song_indices, dtype=torch.long)
        if all("slice_key" in row for row in rows):  # for a backbone feature cache
            batch["slice_keys"] = [row["slice_key"] for row in rows]
        return batch


# ----------------------------------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------------------------------


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; raised before the optimizer step, so nothing is saved."""


class LCATrainer(Trainer):
    """A `Trainer` whose `compute_loss` is the LCA loss with the two-step schedule (see the module docstring).

    `args` must be an [`LCATrainingArguments`]. Batches carry `input_values`, `labels` and, for song-level metrics,
    `song_index` (not a model input: it is removed before the forward pass and gathered as a label).
    """

    def __init__(self, model=None, args: LCATrainingArguments = None, **kwargs):
        if not isinstance(args, LCATrainingArguments):
            raise TypeError(f"LCATrainer needs `args` of type LCATrainingArguments, got {type(args).__name__}.")
        mode = getattr(getattr(model, "config", None), "counterfactual", "none")
        inert = model.inert_counterfactual_reason() if hasattr(model, "inert_counterfactual_reason") else None
        if inert:
            logger.warning(f"LCA is inert in this configuration: {inert}")
            warnings.warn(f"LCA is inert in this configuration: {inert}", UserWarning, stacklevel=2)
        if mode == "learned" and args.cf_warmup_epochs > 0 and args.ddp_find_unused_parameters is False:
            raise ValueError(
                "`ddp_find_unused_parameters=False` cannot train counterfactual='learned' with cf_warmup_epochs > 0: "
                "the counterfactual branch has no gradient during the warm-up. Leave it unset or set it to True."
            )
        if mode == "random":
            ignored = {name: args.lca_weights[name] for name in LEARNED_ONLY_TERMS if args.lca_weights[name] != 0}
            if ignored:
                logger.warning(
                    f"counterfactual='random' (CAL): the weights {ignored} are ignored (no counterfactual branch to "
                    "train); the loss is λ_ce_main·CE(y) + λ_effect·CE(y_effect) − λ_ent_main·H(y)."
                )
        super().__init__(model=model, args=args, **kwargs)
        # Our loss is a per-batch mean: let the Trainer divide it by the gradient-accumulation steps, and never pass
        # `num_items_in_batch` to the model (its forward takes **kwargs, which the Trainer would read as loss kwargs).
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False
        self._term_sums = {"train": {}, "eval": {}}
        self._term_counts = {"train": 0, "eval": 0}
        self._warmup_flags = {"train": [], "eval": []}

    # -- schedule --------------------------------------------------------------------------------------------------

    @property
    def counterfactual_mode(self) -> str:
        return getattr(self.accelerator.unwrap_model(self.model).config, "counterfactual", "none")

    def in_counterfactual_warmup(self) -> bool:
        """True during the first `cf_warmup_epochs` epochs: a function of `state.epoch` only (restored on resume).

        `state.epoch` is `e + k/n` during step `k` of epoch `e` (0-based), so `floor` gives the epoch being trained.
        """
        epoch = self.state.epoch or 0.0
        return math.floor(epoch + 1e-9) < self.args.cf_warmup_epochs

    def effective_weights(self, warmup: bool) -> dict[str, float]:
        """The weights of Eq. 1 in force (`lca_loss.effective_lca_weights` for this model's mode)."""
        return effective_lca_weights(self.counterfactual_mode, self.args.lca_weights, warmup)

    # -- forward ---------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _counterfactual_at_eval(self, model, model_inputs: dict):
        """Makes an eval-mode forward pass also compute the counterfactual branch (see the module docstring)."""
        unwrapped = self.accelerator.unwrap_model(model)
        if "return_counterfactual" in inspect.signature(unwrapped.forward).parameters:
            model_inputs["return_counterfactual"] = True
            with torch.random.fork_rng(devices=self._rng_devices()):
                yield
            return
        was_training = unwrapped.training
        unwrapped.training = True  # only the top-level flag: submodules (dropout, batch norm) stay in eval mode
        try:
            with torch.random.fork_rng(devices=self._rng_devices()):
                yield
        finally:
            unwrapped.training = was_training

    def _rng_devices(self) -> list:
        device = self.args.device
        return [device.index or 0] if device.type == "cuda" else []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The LCA loss of one batch (Eq. 1 under the current schedule); also accumulates every term for logging.

        `num_items_in_batch` is not used: every term is a batch mean and the Trainer divides by the
        gradient-accumulation steps (`loss_is_scaled_for_ga = False`).
        """
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "song_index", "slice_keys")}
        self._use_backbone_cache(model, inputs, model_inputs)
        labels = inputs.get("labels")
        if labels is None:
            raise ValueError(f"LCATrainer needs `labels` in every batch; the batch has {sorted(inputs)}.")
        training = model.training
        mode = self.counterfactual_mode
        config = self.accelerator.unwrap_model(model).config
        multi_label = is_multi_label(config)
        check_labels(labels, labels.shape[0], config.num_labels, multi_label)
        warmup = self.in_counterfactual_warmup()

        if not training and mode != "none" and self.args.evaluate_counterfactual:
            with self._counterfactual_at_eval(model, model_inputs):
                outputs = model(**model_inputs)
        else:
            outputs = model(**model_inputs)

        loss, terms = scheduled_lca_loss(
            outputs, labels, mode, self.args.lca_weights, warmup, training, self.args.effect_type, multi_label
        )
        if training and self.args.log_lca_gradients and self._at_logging_step():
            groups = attention_parameter_groups(self.accelerator.unwrap_model(model))
            self._gradient_norms = lca_gradient_norms(terms, self.effective_weights(warmup), groups)
        unwrapped = self.accelerator.unwrap_model(model)
        if hasattr(unwrapped, "regularization_loss"):
            penalty = unwrapped.regularization_loss(outputs["logits"])
            if penalty.requires_grad or float(penalty.detach()) != 0.0:
                loss = loss + penalty
                terms = {**terms, "regularization": penalty}

        if training:
            self._check_finite(loss, terms, inputs)
        self._accumulate("train" if training else "eval", terms, warmup)

        if return_outputs:
            kept = {"logits": outputs["logits"]}
            counterfactual_logits = outputs.get("counterfactual_logits") if mode != "none" else None
            if counterfactual_logits is not None and not training:
                kept["counterfactual_logits"] = counterfactual_logits.detach()
            return loss, kept
        return loss

    def _use_backbone_cache(self, model, inputs: dict, model_inputs: dict) -> None:
        """With `--backbone_cache_dir`: the batch's backbone hidden states from the cache (computed and stored when
        missing) replace its waveforms. Batches with padding (an attention mask with zeros) run the backbone."""
        if self.args.backbone_cache_dir is None or "slice_keys" not in inputs:
            return
        mask = model_inputs.get("attention_mask")
        if mask is not None and not bool(mask.bool().all()):
            return
        unwrapped = self.accelerator.unwrap_model(model)
        if getattr(self, "_backbone_cache", None) is None:
            from ..data.backbone_cache import BackboneFeatureCache

            self._backbone_cache = BackboneFeatureCache(
                self.args.backbone_cache_dir, unwrapped, self.args.backbone_cache_dtype
            )
        model_inputs.pop("attention_mask", None)
        waveforms = model_inputs.pop("input_values")
        model_inputs["backbone_hidden_states"] = self._backbone_cache.hidden_states(
            unwrapped, waveforms, inputs["slice_keys"]
        )

    def _batch_songs(self, inputs: dict) -> str:
        """The songs of a batch, the loudest first, for the error of a non-finite loss (a song with samples of
        amplitude 1e20 or NaN is the usual culprit)."""
        song_index, values = inputs.get("song_index"), inputs.get("input_values")
        song_id_of = getattr(self.data_collator, "song_id_of", {})
        if song_index is None or values is None:
            return ""
        peaks = values.detach().float().abs().nan_to_num(nan=float("inf")).amax(dim=-1)  # (batch,)
        order = peaks.argsort(descending=True).tolist()
        described = [
            f"{song_id_of.get(int(song_index[row]), int(song_index[row]))} (peak {float(peaks[row]):.3g})"
            for row in order[:8]
        ]
        return f" Songs of this batch, loudest first: {', '.join(described)}."

    def _check_finite(self, loss: torch.Tensor, terms: dict, inputs: dict | None = None) -> None:
        """Stops training before the optimizer step when the loss is NaN/inf on any process (all ranks raise)."""
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if self.accelerator.num_processes > 1:
            finite = self.accelerator.gather(finite).min().reshape(1)
        if finite.item() == 1.0:
            return
        step = self.state.global_step + 1
        values = {name: float(value.detach()) for name, value in terms.items()}
        raise NonFiniteLossError(
            f"non-finite LCA loss ({float(loss.detach())}) at global step {step} (epoch {self.state.epoch or 0.0:.3f}); "
            f"terms: {values}. Training stopped before the optimizer step of step {step}: no checkpoint holds this "
            f"state, the last saved checkpoint in {self.args.output_dir} is intact. Lower the learning rate or the "
            "entropy/attention weights, or check the input audio." + (self._batch_songs(inputs) if inputs else "")
        )

    def training_step(self, model, inputs, num_items_in_batch=None):
        """`Trainer.training_step`, then the warm-up's rule for the branch: `cf_warmup_mode="freeze"` leaves it without
        gradients (the optimizer skips it), `"zero_gradients"` gives it zero gradients that the optimizer steps on (the
        LCA reference multiplies its terms by a stage flag of 0)."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.in_counterfactual_warmup():
            for parameter in self.accelerator.unwrap_model(model).counterfactual_parameters():
                if self.args.cf_warmup_mode == "zero_gradients":
                    if parameter.grad is None:
                        parameter.grad = torch.zeros_like(parameter)
                else:  # "freeze": no gradient at all (a shared batched pass may have left zeros), so no step
                    parameter.grad = None
        return loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """`Trainer.prediction_step`, under `torch.autocast` when `--eval_autocast` asks for it."""
        if self.args.eval_autocast == "none":
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        with torch.autocast(self.args.device.type, dtype=getattr(torch, self.args.eval_autocast)):
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    # -- saving ----------------------------------------------------------------------------------------------------

    def _save_checkpoint(self, model, trial) -> None:
        """`Trainer._save_checkpoint`, with a full disk said in words: torch's zip writer reports it as
        `unexpected pos 64 vs 0`. The half-written checkpoint has no `checksums.json` and is never resumed from."""
        folder = os.path.join(self.args.output_dir, f"checkpoint-{self.state.global_step}")
        try:
            super()._save_checkpoint(model, trial)
        except (OSError, RuntimeError) as error:
            text = str(error)
            if getattr(error, "errno", None) == errno.ENOSPC or "unexpected pos" in text or "No space left" in text:
                free = shutil.disk_usage(self.args.output_dir).free if os.path.isdir(self.args.output_dir) else 0
                raise OSError(
                    errno.ENOSPC,
                    f"the disk is full while writing {folder} ({free / 2**20:.0f} MiB free; torch said: "
                    f"{text.splitlines()[0][:200]}). That checkpoint is incomplete and will not be resumed from; free "
                    "space (or lower --save_total_limit) and resume with --resume_from_checkpoint last.",
                ) from error
            raise

    # -- logging ---------------------------------------------------------------------------------------------------

    def _accumulate(self, phase: str, terms: dict, warmup: bool) -> None:
        sums = self._term_sums[phase]
        for name, value in terms.items():
            value = value.detach().float()
            sums[name] = value if name not in sums else sums[name] + value
        self._term_counts[phase] += 1
        self._warmup_flags[phase].append(warmup)

    def _pop_term_means(self, phase: str, prefix: str) -> dict[str, float]:
        """Means of the accumulated terms over the window and over every process; resets the window.

        Collective under multi-process runs: every rank calls it at the same point (train logging, evaluation).
        """
        count = self._term_counts[phase]
        sums = self._term_sums[phase]
        warmup_flags = self._warmup_flags[phase]
        self._term_sums[phase], self._term_counts[phase], self._warmup_flags[phase] = (
            {},
            0,
            [],
        )
        names = [name for name in (*LOSS_TERMS, *EXTRA_TERMS) if name in sums]
        device = self.args.device
        values = torch.stack(
            [sums[name].to(device) for name in names] + [torch.tensor(float(count), device=device)]
        )  # (terms + 1,)
        if self.accelerator.num_processes > 1:
            values = self.accelerator.reduce(values, reduction="sum")
        total = float(values[-1])
        logs = {f"{prefix}loss_{name}": float(values[i]) / max(total, 1.0) for i, name in enumerate(names)}
        if warmup_flags and self.counterfactual_mode != "none":
            logs[f"{prefix}cf_warmup"] = float(warmup_flags[-1])
        return logs

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds the averaged training terms to every training log (the one that carries `loss`)."""
        if "loss" in logs and self._term_counts["train"] > 0:
            logs.update(self._pop_term_means("train", prefix=""))
        if "loss" in logs and getattr(self, "_gradient_norms", None):
            logs.update(self._gradient_norms)
            self._gradient_norms = {}
        super().log(logs, start_time)

    def _at_logging_step(self) -> bool:
        """Whether the step being computed ends in a training log (`logging_steps`; every step with "epoch" logging
        would be too often, so then the last step of each epoch: when the state's epoch is about to turn)."""
        step = self.state.global_step + 1
        if self.args.logging_strategy == "steps":
            return step % max(1, int(self.args.logging_steps)) == 0
        steps_per_epoch = max(1, self.state.max_steps // max(1, int(math.ceil(self.args.num_train_epochs))))
        return step % steps_per_epoch == 0

    def evaluation_loop(
        self,
        dataloader,
        description,
        prediction_loss_only=None,
        ignore_keys=None,
        metric_key_prefix="eval",
    ):
        """`Trainer.evaluation_loop` plus the mean of every loss term over the split (`<prefix>_loss_<term>`). The
        models' configs leave their extra outputs out of predictions (`keys_to_ignore_at_inference`); this trainer's
        `compute_loss` already returns what its metrics read (the logits, and the counterfactual logits when asked),
        so nothing is ignored here unless the caller says so."""
        ignore_keys = [] if ignore_keys is None else ignore_keys
        (
            self._term_sums["eval"],
            self._term_counts["eval"],
            self._warmup_flags["eval"],
        ) = {}, 0, []
        output = super().evaluation_loop(
            dataloader,
            description,
            prediction_loss_only=prediction_loss_only,
            ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        if self._term_counts["eval"] > 0 or self.accelerator.num_processes > 1:
            output.metrics.update(self._pop_term_means("eval", prefix=f"{metric_key_prefix}_"))
        return output
