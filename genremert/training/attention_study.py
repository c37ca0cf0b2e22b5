"""One run of the ground-truth attention study: the real GenreMERT head (through its `backbone_hidden_states` input)
trained on `genremert.data.attention_benchmark` frames with the LCA loss of `lca_loss` and its two-step schedule, then
scored on every split: accuracy, where the main and the counterfactual attention sit (mass on discriminative /
spurious / filler frames), the counterfactual branch's own accuracy (the paper's Table 4).

Arms (`--attention_arm`): `learned` (the model's own attention, plain / CAL / LCA by `--counterfactual`), `oracle` (the
main attention fixed to the discriminative frames: the ceiling) and `shortcut` (fixed to the spurious frames: the
floor). `run_experiments.py --benchmark attention` runs this once per (variant, seed) and adds paired intervals.

    python -m genremert.training.attention_study --output_dir OUT --seed 0 --counterfactual learned \
        --bias_structure shared --rho 0.9

Writes `OUT/all_results.json` (every metric below, per split), `OUT/history.json` (per epoch: validation accuracy,
attention mass per region for both branches, and the per-term gradient norms on the attention and the rest of the
model) and TensorBoard logs under `OUT/runs/`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from configuration_genremert import GenreMERTConfig
from modeling_genremert import GenreMERTForAudioClassification

from ..data.attention_benchmark import BIAS_STRUCTURES, TEST_SPLITS, FrameBenchmarkConfig, make_split, role_attention
from ..evaluation.attention_mass import attention_mass, prediction_scores
from .lca_loss import (
    LOSS_TERMS,
    REFERENCE_LCA_WEIGHTS,
    attention_parameter_groups,
    effective_lca_weights,
    lca_gradient_norms,
    scheduled_lca_loss,
)


ATTENTION_ARMS = ("learned", "oracle", "shortcut")
# The demo's LCA weights (genremert.demo): lighter entropy terms than the reference's.
DEMO_LCA_WEIGHTS = {"ce_main": 1.0, "effect": 1.0, "ce_cf": 0.6, "ent_cf": 0.3, "ent_main": 0.1, "att": 1.0}
# The arms, as flags of this runner (`run_experiments.py --benchmark attention --variants ...`).
ATTENTION_VARIANTS = {
    "plain": {"counterfactual": "none"},
    "cal": {"counterfactual": "random", "lambda_ent_main": 0.0},
    "lca": {"counterfactual": "learned"},  # the reference GTZAN weights
    "lca_demo": {"counterfactual": "learned", **{f"lambda_{k}": v for k, v in DEMO_LCA_WEIGHTS.items()}},
    **{
        f"lca_no_{term}": {"counterfactual": "learned", f"lambda_{term}": 0.0}
        for term in ("effect", "ce_cf", "ent_cf", "ent_main", "att")
    },
    "lca_no_two_step": {"counterfactual": "learned", "cf_warmup_epochs": 0},
    "oracle": {"counterfactual": "none", "attention_arm": "oracle"},
    "shortcut_only": {"counterfactual": "none", "attention_arm": "shortcut"},
}
# Search space of the λ search: log-uniform in [LOW, HIGH] for every term but CE(y), which stays 1 (the scale).
SEARCH_RANGE = (0.03, 3.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--seed", type=int, default=0, help="Training seed (initialisation and data order).")
    model = parser.add_argument_group("model and arm")
    model.add_argument("--counterfactual", choices=("none", "learned", "random"), default="none")
    model.add_argument("--attention_arm", choices=ATTENTION_ARMS, default="learned")
    model.add_argument(
        "--time_attention_input",
        choices=("features", "mean"),
        default="features",
        help="What GenreMERT's time attention reads: the whole frame, or (reference) only the frame's mean.",
    )
    model.add_argument("--classifier_dropout", type=float, default=0.0)
    model.add_argument("--counterfactual_dropout", type=float, default=0.0)
    lca = parser.add_argument_group("LCA (Eq. 1) and the two-step schedule")
    for name in LOSS_TERMS:
        lca.add_argument(f"--lambda_{name}", type=float, default=REFERENCE_LCA_WEIGHTS[name])
    lca.add_argument("--lca_weights_file", default=None, help="JSON {term: weight} (e.g. from the weight search).")
    lca.add_argument("--cf_warmup_epochs", type=int, default=3)
    lca.add_argument("--effect_type", choices=("softmax", "logits"), default="softmax")
    data = parser.add_argument_group("data (genremert.data.attention_benchmark)")
    data.add_argument("--bias_structure", choices=BIAS_STRUCTURES, default="shared")
    data.add_argument("--rho", type=float, default=0.9, help="P(cue agrees with the class) in train and validation.")
    data.add_argument("--class_strength", type=float, default=FrameBenchmarkConfig.class_strength)
    data.add_argument("--cue_strength", type=float, default=FrameBenchmarkConfig.cue_strength)
    data.add_argument("--num_train", type=int, default=2000)
    data.add_argument("--num_validation", type=int, default=1000)
    data.add_argument("--num_test", type=int, default=2000)
    data.add_argument("--world_seed", type=int, default=0, help="The data's seed: the same for every arm and seed.")
    training = parser.add_argument_group("training")
    training.add_argument("--num_train_epochs", type=int, default=15)
    training.add_argument("--learning_rate", type=float, default=3e-3)
    training.add_argument("--per_device_train_batch_size", type=int, default=64)
    training.add_argument("--no_log_lca_gradients", dest="log_lca_gradients", action="store_false")
    training.add_argument("--no_test", dest="evaluate_tests", action="store_false", help="Score validation only.")
    training.add_argument(  # what run_experiments passes to rerun a folder: a run here always starts afresh
        "--overwrite_output_dir", default=None, help=argparse.SUPPRESS
    )
    return parser


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.lca_weights_file:
        try:
            with open(args.lca_weights_file, encoding="utf-8") as handle:
                weights = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            parser.error(f"--lca_weights_file {args.lca_weights_file}: cannot read it as JSON ({error}).")
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            parser.error(f"--lca_weights_file {args.lca_weights_file}: unknown term(s) {unknown}; known {LOSS_TERMS}.")
        for name, value in weights.items():
            setattr(args, f"lambda_{name}", float(value))
    for name in LOSS_TERMS:
        value = getattr(args, f"lambda_{name}")
        if not (np.isfinite(value) and value >= 0):
            parser.error(f"--lambda_{name} must be a finite number ≥ 0, got {value}.")
    if args.num_train_epochs < 1:
        parser.error(f"--num_train_epochs must be ≥ 1, got {args.num_train_epochs}.")
    if args.attention_arm != "learned" and args.counterfactual != "none":
        parser.error(
            f"--attention_arm {args.attention_arm} fixes the main attention: use it with --counterfactual none."
        )
    return args


def benchmark_config(args) -> FrameBenchmarkConfig:
    return FrameBenchmarkConfig(
        bias_structure=args.bias_structure,
        rho=args.rho,
        class_strength=args.class_strength,
        cue_strength=args.cue_strength,
        num_train=args.num_train,
        num_validation=args.num_validation,
        num_test=args.num_test,
        world_seed=args.world_seed,
    )


def build_model(args, data_config: FrameBenchmarkConfig) -> GenreMERTForAudioClassification:
    """GenreMERT whose backbone's width is the frames' feature size; the frames enter as its one aggregated layer."""
    config = GenreMERTConfig(
        backbone_config={
            "hidden_size": data_config.dim,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": data_config.dim,
            "conv_dim": [8],
            "conv_stride": [5],
            "conv_kernel": [10],
            "num_conv_pos_embeddings": 4,
            "num_conv_pos_embedding_groups": 2,
        },
        aggregation_layers=[0],
        attention_hidden_size=16,
        representation_size=16,
        time_attention_input=args.time_attention_input,
        classifier_dropout=args.classifier_dropout,
        counterfactual_dropout=args.counterfactual_dropout,
        counterfactual=args.counterfactual,
        num_labels=data_config.num_classes,
    )
    return GenreMERTForAudioClassification(config)


class FixedAttention:
    """A forward hook that replaces the main time attention by a fixed one (the oracle / shortcut arms)."""

    def __init__(self, model, role: str):
        self.role = role
        self.frame_roles = None
        self.handle = model.time_attention.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        return torch.from_numpy(role_attention(self.frame_roles, self.role)).to(output.dtype)


def _batches(split, indices, batch_size):
    for start in range(0, len(indices), batch_size):
        rows = indices[start : start + batch_size]
        yield rows, torch.from_numpy(split.features[rows][:, None]), torch.from_numpy(split.labels[rows])


@torch.no_grad()
def evaluate(model, split, fixed: FixedAttention | None, prefix: str, batch_size: int = 500) -> dict[str, float]:
    """Accuracy, entropy and attention mass per region of both branches on one split (eval mode: no dropout)."""
    model.eval()
    logits, cf_logits, attention, cf_attention = [], [], [], []
    for rows, features, _ in _batches(split, np.arange(len(split)), batch_size):
        if fixed is not None:
            fixed.frame_roles = split.frame_roles[rows]
        outputs = model(backbone_hidden_states=features, return_counterfactual=model.counterfactual_branch is not None)
        logits.append(outputs.logits)
        attention.append(outputs.attention)
        if outputs.counterfactual_logits is not None:
            cf_logits.append(outputs.counterfactual_logits)
            cf_attention.append(outputs.counterfactual_attention)
    results = prediction_scores(torch.cat(logits).numpy(), split.labels, prefix)
    masses = attention_mass(torch.cat(attention).numpy(), split.frame_roles)
    results.update({f"{prefix}main_mass_{role}": mass for role, mass in masses.items()})
    if cf_logits:
        results.update(prediction_scores(torch.cat(cf_logits).numpy(), split.labels, f"{prefix}cf_"))
        masses = attention_mass(torch.cat(cf_attention).numpy(), split.frame_roles)
        results.update({f"{prefix}cf_mass_{role}": mass for role, mass in masses.items()})
    return results


def train(args, log=print) -> dict:
    """Train one arm on one seed; returns (and writes) its results."""
    from torch.utils.tensorboard import SummaryWriter

    os.makedirs(args.output_dir, exist_ok=True)
    data_config = benchmark_config(args)
    train_split, validation = make_split(data_config, "train"), make_split(data_config, "validation")
    torch.manual_seed(args.seed)
    model = build_model(args, data_config)
    fixed = FixedAttention(model, "discriminative" if args.attention_arm == "oracle" else "spurious")
    if args.attention_arm == "learned":
        fixed.handle.remove()
        fixed = None
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=args.learning_rate)
    weights = {name: getattr(args, f"lambda_{name}") for name in LOSS_TERMS}
    rng = np.random.default_rng(args.seed)
    writer = SummaryWriter(os.path.join(args.output_dir, "runs"))
    history, step, started = [], 0, time.perf_counter()
    for epoch in range(args.num_train_epochs):
        warmup = epoch < args.cf_warmup_epochs
        model.train()
        gradient_norms = {}
        order = rng.permutation(len(train_split))
        for rows, features, labels in _batches(train_split, order, args.per_device_train_batch_size):
            if fixed is not None:
                fixed.frame_roles = train_split.frame_roles[rows]
            outputs = model(backbone_hidden_states=features)
            loss, terms = scheduled_lca_loss(
                outputs, labels, args.counterfactual, weights, warmup, True, args.effect_type
            )
            if args.log_lca_gradients and not gradient_norms:  # the epoch's first batch: one logging step
                in_force = effective_lca_weights(args.counterfactual, weights, warmup)
                gradient_norms = lca_gradient_norms(terms, in_force, attention_parameter_groups(model))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        record = {"epoch": epoch + 1, "step": step, "cf_warmup": int(warmup), "loss": float(loss.detach())}
        record.update({f"loss_{name}": float(value.detach()) for name, value in terms.items()})
        record.update(evaluate(model, validation, fixed, "eval_"))
        record.update(gradient_norms)
        history.append(record)
        for key, value in record.items():
            if key not in ("epoch", "step"):
                writer.add_scalar(key, value, step)
    writer.close()
    results = {"train_runtime": time.perf_counter() - started, "epochs": args.num_train_epochs}
    results.update(evaluate(model, validation, fixed, "eval_"))
    if args.evaluate_tests:
        for split_name in TEST_SPLITS:
            results.update(evaluate(model, make_split(data_config, split_name), fixed, f"{split_name}_"))
    with open(os.path.join(args.output_dir, "history.json"), "w", encoding="utf-8") as handle:
        json.dump(history, handle, indent=1)
    with open(os.path.join(args.output_dir, "all_results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    with open(os.path.join(args.output_dir, "run_args.json"), "w", encoding="utf-8") as handle:
        json.dump({**vars(args), "benchmark": "attention", "data": data_config.__dict__}, handle, indent=2)
    log(
        f"[{args.attention_arm}/{args.counterfactual} seed {args.seed}] "
        + (f"decorrelated accuracy {results['decorrelated_accuracy']:.3f}, " if args.evaluate_tests else "")
        + f"validation accuracy {results['eval_accuracy']:.3f} in {results['train_runtime']:.1f} s"
    )
    return results


def search_lca_weights(
    base_args: list[str], output_dir: str, budget: int = 12, search_seed: int = 1000, select_on: str = "eval", log=print
) -> dict:
    """Random search over the λ's of Eq. 1 with a fixed budget: `budget` LCA runs on one training seed (`search_seed`,
    kept apart from the study's seeds), scored on the in-distribution validation split only (`select_on="eval"`):
    the test splits are never generated. `select_on="decorrelated"` selects on the decorrelated test split instead:
    an upper bound that no honest result may use, labelled so in its file. Writes `output_dir/search.json` (every
    candidate and its score) and `output_dir/chosen_weights.json`; returns the chosen weights."""
    if select_on not in ("eval", "decorrelated"):
        raise ValueError(f"select_on must be 'eval' (validation) or 'decorrelated', got {select_on!r}.")
    if budget < 1:
        raise ValueError(f"the search budget must be ≥ 1 run, got {budget}.")
    rng = np.random.default_rng(search_seed)
    low, high = np.log(SEARCH_RANGE[0]), np.log(SEARCH_RANGE[1])
    candidates = []
    for _ in range(budget):
        weights = {"ce_main": 1.0}
        weights.update({term: float(np.exp(rng.uniform(low, high))) for term in LOSS_TERMS if term != "ce_main"})
        candidates.append(weights)
    scored = []
    for index, weights in enumerate(candidates):
        flags = [*base_args, "--counterfactual", "learned", "--seed", str(search_seed)]
        flags += [item for name, value in weights.items() for item in (f"--lambda_{name}", str(value))]
        flags += ["--output_dir", os.path.join(output_dir, f"candidate{index:03d}")]
        if select_on == "eval":
            flags.append("--no_test")
        results = train(parse_arguments(flags), log=log)
        scored.append({"weights": weights, "score": results[f"{select_on}_accuracy"]})
    best = max(range(len(scored)), key=lambda i: (scored[i]["score"], -i))
    chosen = scored[best]["weights"]
    report = {
        "selected_on": "in-distribution validation accuracy"
        if select_on == "eval"
        else "decorrelated TEST accuracy: an upper bound, never a result",
        "budget": budget,
        "search_seed": search_seed,
        "range": SEARCH_RANGE,
        "candidates": scored,
        "chosen": chosen,
    }
    with open(os.path.join(output_dir, "search.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    with open(os.path.join(output_dir, "chosen_weights.json"), "w", encoding="utf-8") as handle:
        json.dump(chosen, handle, indent=2)
    log(f"λ search ({report['selected_on']}): chose {chosen} (score {scored[best]['score']:.3f} of {budget} runs)")
    return chosen


def tuned_variants(searches, base_args: list[str], output_dir: str, budget: int, search_seed: int) -> dict:
    """Run each `(variant name, select_on)` search into `output_dir/search_<name>/`; the variants that train with the
    chosen weights (`run_experiments.py --search_lca_weights`)."""
    variants = {}
    for name, select_on in searches:
        folder = os.path.join(output_dir, f"search_{name}")
        os.makedirs(folder, exist_ok=True)
        search_lca_weights(base_args, folder, budget, search_seed, select_on=select_on)
        variants[name] = {"counterfactual": "learned", "lca_weights_file": os.path.join(folder, "chosen_weights.json")}
    return variants


def main(argv: list[str] | None = None) -> dict:
    import sys

    return train(parse_arguments(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
