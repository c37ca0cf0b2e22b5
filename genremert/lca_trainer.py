"""The LCA loss (Lin et al., Eq. 1) and `LCATrainer`, a `transformers.Trainer` that trains with it in two steps.

    L = λ_ce_main·CE(y) + λ_effect·CE(y_effect) + λ_ce_cf·CE(ỹ) − λ_ent_cf·H(ỹ) − λ_att·L1(A, Ã) − λ_ent_main·H(y)

y / ỹ are the logits of the main and the counterfactual branch, A / Ã their attentions, H the batch mean of the entropy
of the softmax, L1 the mean absolute difference of the attentions. The effect `y_effect` is, by default, the
reference code's `softmax(y) − softmax(ỹ)` fed to the cross-entropy *as logits* (`effect_type="softmax"`); CAL's own
code uses the difference of logits `y − ỹ` (`effect_type="logits"`).

Multi-label tagging (`config.problem_type = "multi_label_classification"`, float multi-hot labels): each CE is the
binary cross-entropy averaged over examples and tags, each H the mean Bernoulli entropy of the tags' sigmoids, the
effect `sigmoid(y) − sigmoid(ỹ)` per tag ("softmax") or `y − ỹ` ("logits"), L1 unchanged; docs/tagging.md says why.

Modes (the model's `config.counterfactual`):
    - `"none"`: plain cross-entropy `CE(y)`, whatever the weights.
    - `"learned"` (LCA): every term of Eq. 1.
    - `"random"` (CAL ablation): `λ_ce_main·CE(y) + λ_effect·CE(y_effect) − λ_ent_main·H(y)` with random attention;
      the terms that would train a counterfactual branch (`ce_cf`, `ent_cf`, `att`) are off: there is none.

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
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments
from transformers.utils import logging

from modeling_lca_genremert import check_labels, classification_loss, is_multi_label


logger = logging.get_logger(__name__)

LOSS_TERMS = ("ce_main", "effect", "ce_cf", "ent_cf", "ent_main", "att")
# Logged next to the Eq. 1 terms when the model adds penalties of its own (CRNN_FGNL's Keras L2/L1, weight 1).
EXTRA_TERMS = ("regularization",)
CF_WARMUP_MODES = ("freeze", "zero_gradients")
EFFECT_TYPES = ("softmax", "logits")
# The reference GTZAN LCA weights (genreMERT_LCA.json); the defaults of `LCATrainingArguments`.
REFERENCE_LCA_WEIGHTS = {
    "ce_main": 0.7,
    "effect": 1.0,
    "ce_cf": 0.6,
    "ent_cf": 2.0,
    "ent_main": 1.5,
    "att": 2.0,
}
# The sign of each weighted term in Eq. 1: entropies and the attention distance are maximised.
TERM_SIGNS = {
    "ce_main": 1.0,
    "effect": 1.0,
    "ce_cf": 1.0,
    "ent_cf": -1.0,
    "ent_main": -1.0,
    "att": -1.0,
}
# Terms that train (or only make sense with) a learned counterfactual branch; off in "random" (CAL) mode.
LEARNED_ONLY_TERMS = ("ce_cf", "ent_cf", "att")


# ----------------------------------------------------------------------------------------------------------------------
# The loss terms
# ----------------------------------------------------------------------------------------------------------------------


def mean_entropy(logits: torch.Tensor, multi_label: bool = False) -> torch.Tensor:
    """Batch mean of the entropy `−Σ_c p_c log p_c` of `softmax(logits)`; `(batch, classes)` → scalar (nats).

    Multi-label: the mean over examples *and tags* of the Bernoulli entropy `−p log p − (1 − p) log(1 − p)` of each
    tag's `p = sigmoid(logit)` (in [0, ln 2]), written with softplus so that it is exact for large logits."""
    logits = logits.float()
    if multi_label:
        probabilities = torch.sigmoid(logits)
        # log p = −softplus(−x), log(1 − p) = −softplus(x)
        entropy = probabilities * F.softplus(-logits) + (1.0 - probabilities) * F.softplus(logits)
        return entropy.mean()
    log_probabilities = F.log_softmax(logits, dim=-1)  # (batch, classes)
    return -(log_probabilities.exp() * log_probabilities).sum(dim=-1).mean()


def counterfactual_effect(
    logits: torch.Tensor, counterfactual_logits: torch.Tensor, effect_type: str, multi_label: bool = False
) -> torch.Tensor:
    """`y_effect` `(batch, classes)`: `softmax(y) − softmax(ỹ)` ("softmax", reference) or `y − ỹ` ("logits", CAL).

    Multi-label, "softmax": `sigmoid(y) − sigmoid(ỹ)` per tag (the probability each tag gains from the main attention
    over the counterfactual one; in [−1, 1], fed to the BCE as logits as the reference feeds its difference to the
    CE); "logits": `y − ỹ` as for single-label."""
    if effect_type == "softmax":
        squash = torch.sigmoid if multi_label else (lambda x: F.softmax(x, dim=-1))
        return squash(logits.float()) - squash(counterfactual_logits.float())
    if effect_type == "logits":
        return logits.float() - counterfactual_logits.float()
    raise ValueError(f"`effect_type` must be one of {list(EFFECT_TYPES)}, got {effect_type!r}.")


def lca_loss_terms(
    logits: torch.Tensor,
    labels: torch.Tensor,
    counterfactual_logits: torch.Tensor | None = None,
    attention: torch.Tensor | None = None,
    counterfactual_attention: torch.Tensor | None = None,
    effect_type: str = "softmax",
    multi_label: bool = False,
) -> dict[str, torch.Tensor]:
    """The unweighted terms of Eq. 1 as scalars: `ce_main` and `ent_main` always; `effect`, `ce_cf`, `ent_cf` with
    `counterfactual_logits`; `att` with both attentions (mean |A − Ã| over every element).

    `multi_label` (independent tags, float multi-hot `labels` `(batch, tags)`): every cross-entropy is the binary
    cross-entropy averaged over examples and tags, the entropies are mean Bernoulli entropies (see `mean_entropy`), the
    effect is per tag (see `counterfactual_effect`) and the attention distance is unchanged (docs/tagging.md)."""
    terms = {
        "ce_main": classification_loss(logits, labels, multi_label),
        "ent_main": mean_entropy(logits, multi_label),
    }
    if counterfactual_logits is not None:
        if counterfactual_logits.shape != logits.shape:
            raise ValueError(
                f"`counterfactual_logits` must have the shape of `logits` {tuple(logits.shape)}, got "
                f"{tuple(counterfactual_logits.shape)}."
            )
        effect = counterfactual_effect(logits, counterfactual_logits, effect_type, multi_label)
        terms["effect"] = classification_loss(effect, labels, multi_label)
        terms["ce_cf"] = classification_loss(counterfactual_logits, labels, multi_label)
        terms["ent_cf"] = mean_entropy(counterfactual_logits, multi_label)
    if attention is not None and counterfactual_attention is not None:
        if counterfactual_attention.shape != attention.shape:
            raise ValueError(
                f"`counterfactual_attention` must have the shape of `attention` {tuple(attention.shape)}, got "
                f"{tuple(counterfactual_attention.shape)}."
            )
        terms["att"] = (attention.float() - counterfactual_attention.float()).abs().mean()
    return terms


def combine_lca_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """`Σ sign·λ·term` over the terms with a non-zero weight (signs of Eq. 1). A weighted term that is missing from
    `terms` is an error (the model did not return what the weight needs)."""
    total = None
    for name, weight in weights.items():
        if weight == 0.0:
            continue
        if name not in terms:
            raise ValueError(
                f"the LCA weight lambda_{name}={weight} needs the term {name!r}, which the model outputs do not "
                f"provide (have: {sorted(terms)}); is `counterfactual_logits`/`counterfactual_attention` missing?"
            )
        contribution = TERM_SIGNS[name] * weight * terms[name]
        total = contribution if total is None else total + contribution
    if total is None:
        raise ValueError("every LCA weight is 0: the loss would be constant.")
    return total


# ----------------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------------


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
        """The weights of Eq. 1 in force: plain CE for "none", CE(y) alone in the warm-up, CAL's subset for
        "random"."""
        mode = self.counterfactual_mode
        if mode == "none":
            return {name: (1.0 if name == "ce_main" else 0.0) for name in LOSS_TERMS}
        weights = dict(self.args.lca_weights)
        if warmup:
            return {name: (weights["ce_main"] if name == "ce_main" else 0.0) for name in LOSS_TERMS}
        if mode == "random":
            for name in LEARNED_ONLY_TERMS:
                weights[name] = 0.0
        return weights

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

        counterfactual_logits = outputs.get("counterfactual_logits") if mode != "none" else None
        counterfactual_attention = outputs.get("counterfactual_attention") if mode != "none" else None
        weights = self.effective_weights(warmup)
        if warmup or not training:
            # Warm-up: the counterfactual terms are logged but must not reach the branch (no gradient at all).
            cf_terms_source = (
                counterfactual_logits.detach() if counterfactual_logits is not None else None,
                counterfactual_attention.detach() if counterfactual_attention is not None else None,
            )
        else:
            cf_terms_source = (counterfactual_logits, counterfactual_attention)
        main_attention = outputs.get("attention")
        if warmup and main_attention is not None:
            main_attention = main_attention.detach()
        terms = lca_loss_terms(
            outputs["logits"],
            labels,
            counterfactual_logits=cf_terms_source[0],
            attention=main_attention,
            counterfactual_attention=cf_terms_source[1],
            effect_type=self.args.effect_type,
            multi_label=multi_label,
        )
        if warmup:
            # Only CE(y) carries gradient in the warm-up; the other terms are for the logs.
            terms = {name: (value if name == "ce_main" else value.detach()) for name, value in terms.items()}
        loss = combine_lca_loss(terms, weights)
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
            if counterfactual_logits is not None and not training:
                kept["counterfactual_logits"] = counterfactual_logits
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
            from .backbone_cache import BackboneFeatureCache

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
        super().log(logs, start_time)

    def evaluation_loop(
        self,
        dataloader,
        description,
        prediction_loss_only=None,
        ignore_keys=None,
        metric_key_prefix="eval",
    ):
        """`Trainer.evaluation_loop` plus the mean of every loss term over the split (`<prefix>_loss_<term>`)."""
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


__all__ = [
    "EFFECT_TYPES",
    "LOSS_TERMS",
    "REFERENCE_LCA_WEIGHTS",
    "LCATrainer",
    "LCATrainingArguments",
    "NonFiniteLossError",
    "SliceCollator",
    "combine_lca_loss",
    "counterfactual_effect",
    "lca_loss_terms",
    "mean_entropy",
]
