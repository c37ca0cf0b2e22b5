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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modeling_lca_genremert import classification_loss


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
# The two-step schedule, and what each term does to the gradients
# ----------------------------------------------------------------------------------------------------------------------


def effective_lca_weights(mode: str, weights: dict[str, float], warmup: bool) -> dict[str, float]:
    """The weights of Eq. 1 in force: plain CE for `mode="none"`, `λ_ce_main·CE(y)` alone in the warm-up, CAL's subset
    for `"random"` (no counterfactual branch to train), every weight for `"learned"`."""
    if mode == "none":
        return {name: (1.0 if name == "ce_main" else 0.0) for name in LOSS_TERMS}
    if warmup:
        return {name: (weights["ce_main"] if name == "ce_main" else 0.0) for name in LOSS_TERMS}
    weights = dict(weights)
    if mode == "random":
        for name in LEARNED_ONLY_TERMS:
            weights[name] = 0.0
    return weights


def scheduled_lca_loss(
    outputs,
    labels: torch.Tensor,
    mode: str,
    weights: dict[str, float],
    warmup: bool,
    training: bool = True,
    effect_type: str = "softmax",
    multi_label: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`(loss, terms)` of one batch under the two-step schedule, from a model's outputs (`logits`, `attention`,
    `counterfactual_logits`, `counterfactual_attention`). In the warm-up (and outside training) the counterfactual
    terms are computed on detached tensors: they are logged, but no gradient reaches the branch (its `.grad` stays
    `None`, so optimizers skip it); in the warm-up only `CE(y)` carries gradient. `LCATrainer.compute_loss` and the
    attention study both call this."""
    counterfactual_logits = outputs.get("counterfactual_logits") if mode != "none" else None
    counterfactual_attention = outputs.get("counterfactual_attention") if mode != "none" else None
    if warmup or not training:
        counterfactual_logits = counterfactual_logits.detach() if counterfactual_logits is not None else None
        counterfactual_attention = counterfactual_attention.detach() if counterfactual_attention is not None else None
    main_attention = outputs.get("attention")
    if warmup and main_attention is not None:
        main_attention = main_attention.detach()
    terms = lca_loss_terms(
        outputs["logits"],
        labels,
        counterfactual_logits=counterfactual_logits,
        attention=main_attention,
        counterfactual_attention=counterfactual_attention,
        effect_type=effect_type,
        multi_label=multi_label,
    )
    if warmup:
        terms = {name: (value if name == "ce_main" else value.detach()) for name, value in terms.items()}
    return combine_lca_loss(terms, effective_lca_weights(mode, weights, warmup)), terms


def attention_parameter_groups(model) -> dict[str, list]:
    """A model's trainable parameters in the groups the gradient diagnostics report: the counterfactual branch
    (`counterfactual_attention`), the main attention (`attention`: names with "attention" or "mose"), the `rest`."""
    groups = {"attention": [], "counterfactual_attention": [], "rest": []}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.startswith("counterfactual_branch"):
            groups["counterfactual_attention"].append(parameter)
        elif "attention" in name or "mose" in name:
            groups["attention"].append(parameter)
        else:
            groups["rest"].append(parameter)
    return groups


def lca_gradient_norms(
    terms: dict[str, torch.Tensor], weights: dict[str, float], parameter_groups: dict[str, list[torch.nn.Parameter]]
) -> dict[str, float]:
    """The L2 norm of each weighted term's gradient (`sign·λ·∇term`, as it enters Eq. 1) on each parameter group, e.g.
    `{"attention": [...], "counterfactual_attention": [...], "rest": [...]}`: `{"lca_grad_<term>_<group>": norm}`. Terms
    with weight 0 or without gradient are left out. Costs one backward pass per term: for logging steps only."""
    norms = {}
    for name, value in terms.items():
        weight = weights.get(name, 0.0)
        if weight == 0.0 or not value.requires_grad:
            continue
        for group, parameters in parameter_groups.items():
            parameters = [parameter for parameter in parameters if parameter.requires_grad]
            if not parameters:
                continue
            gradients = torch.autograd.grad(
                TERM_SIGNS[name] * weight * value, parameters, retain_graph=True, allow_unused=True
            )
            squares = [gradient.float().pow(2).sum() for gradient in gradients if gradient is not None]
            norms[f"lca_grad_{name}_{group}"] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms
