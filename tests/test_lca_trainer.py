"""LCA loss terms against hand-computed values; the two-step warm-up; exact resume; non-finite loss; term logging."""

import math
import os

import numpy as np
import pytest
import torch
from tiny_configs import tiny_crnn_fgnl_config
from transformers import TrainerCallback

import genremert  # noqa: F401  (registers the models)
from genremert import (
    CRNNFGNLForAudioClassification,
    LCAMetrics,
    LCATrainer,
    LCATrainingArguments,
    NonFiniteLossError,
    SliceCollator,
    build_feature_extractor,
    combine_lca_loss,
    lca_loss_terms,
)


# ----------------------------------------------------------------------------------------------------------------------
# Loss terms, by hand
# ----------------------------------------------------------------------------------------------------------------------


def _softmax(row):
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def _ce(row, label):
    return -math.log(_softmax(row)[label])


def _entropy(row):
    return -sum(p * math.log(p) for p in _softmax(row))


Y = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]
Y_CF = [[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
LABELS = [0, 1]
A = [[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]]
A_CF = [[0.1, 0.3, 0.6], [0.5, 0.25, 0.25]]


def _terms(effect_type="softmax"):
    return lca_loss_terms(
        torch.tensor(Y),
        torch.tensor(LABELS),
        torch.tensor(Y_CF),
        torch.tensor(A),
        torch.tensor(A_CF),
        effect_type=effect_type,
    )


def test_each_loss_term_matches_a_hand_computed_value():
    terms = _terms()
    assert terms["ce_main"].item() == pytest.approx((_ce(Y[0], 0) + _ce(Y[1], 1)) / 2, rel=1e-6)
    assert terms["ce_cf"].item() == pytest.approx((_ce(Y_CF[0], 0) + math.log(3)) / 2, rel=1e-6)
    assert terms["ent_main"].item() == pytest.approx((_entropy(Y[0]) + _entropy(Y[1])) / 2, rel=1e-6)
    # A uniform distribution has entropy log(3).
    assert terms["ent_cf"].item() == pytest.approx((_entropy(Y_CF[0]) + math.log(3)) / 2, rel=1e-6)
    # L1: mean over the 6 elements of |A − Ã| = (0.6 + 0.1 + 0.5 + 0.25 + 0 + 0.25) / 6.
    assert terms["att"].item() == pytest.approx(1.7 / 6, rel=1e-6)
    # Effect (reference): softmax(y) − softmax(ỹ) used as logits.
    effect_rows = [[p - q for p, q in zip(_softmax(y), _softmax(c))] for y, c in zip(Y, Y_CF)]
    expected_effect = (_ce(effect_rows[0], 0) + _ce(effect_rows[1], 1)) / 2
    assert terms["effect"].item() == pytest.approx(expected_effect, rel=1e-6)


def test_effect_on_logits_is_cal_form():
    terms = _terms("logits")
    effect_rows = [[a - b for a, b in zip(y, c)] for y, c in zip(Y, Y_CF)]
    assert terms["effect"].item() == pytest.approx((_ce(effect_rows[0], 0) + _ce(effect_rows[1], 1)) / 2, rel=1e-6)


def test_total_loss_uses_the_signs_of_equation_1():
    terms = _terms()
    weights = {
        "ce_main": 0.7,
        "effect": 1.0,
        "ce_cf": 0.6,
        "ent_cf": 2.0,
        "ent_main": 1.5,
        "att": 2.0,
    }
    expected = (
        0.7 * terms["ce_main"]
        + 1.0 * terms["effect"]
        + 0.6 * terms["ce_cf"]
        - 2.0 * terms["ent_cf"]
        - 2.0 * terms["att"]
        - 1.5 * terms["ent_main"]
    )
    assert combine_lca_loss(terms, weights).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="lambda_att"):
        combine_lca_loss({"ce_main": terms["ce_main"]}, {"ce_main": 1.0, "att": 2.0})


def test_arguments_reject_bad_weights(tmp_path):
    with pytest.raises(ValueError, match="lambda_ent_cf"):
        LCATrainingArguments(output_dir=str(tmp_path), lambda_ent_cf=-1.0)
    with pytest.raises(ValueError, match="effect_type"):
        LCATrainingArguments(output_dir=str(tmp_path), effect_type="difference")
    with pytest.raises(ValueError, match="cf_warmup_epochs"):
        LCATrainingArguments(output_dir=str(tmp_path), cf_warmup_epochs=-2)


# ----------------------------------------------------------------------------------------------------------------------
# A tiny CRNN_FGNL and a tiny slice set
# ----------------------------------------------------------------------------------------------------------------------


def _slices(
    num_songs=6,
    slices_per_song=2,
    num_labels=3,
    seconds=1.0,
    sampling_rate=16000,
    seed=0,
):
    """Rows like `music_datasets.slice_songs`: a class-specific tone in noise per song."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(seconds * sampling_rate)) / sampling_rate
    rows = []
    for song in range(num_songs):
        label = song % num_labels
        for _ in range(slices_per_song):
            wave = 0.3 * np.sin(2 * np.pi * (300 + 500 * label) * time) + 0.05 * rng.standard_normal(time.shape)
            rows.append(
                {
                    "input_values": wave.astype(np.float32),
                    "label": label,
                    "song_id": f"song_{song}",
                }
            )
    return rows


def _trainer(
    tmp_path,
    counterfactual="learned",
    epochs=3,
    warmup=1,
    name="run",
    model=None,
    **overrides,
):
    torch.manual_seed(0)
    config = tiny_crnn_fgnl_config(counterfactual=counterfactual)
    model = model if model is not None else CRNNFGNLForAudioClassification(config)
    rows = _slices()
    song_index_of = {f"song_{i}": i for i in range(6)}
    kwargs = dict(
        output_dir=str(tmp_path / name),
        num_train_epochs=epochs,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=1e-2,
        cf_warmup_epochs=warmup,
        seed=0,
        data_seed=0,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="epoch",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        label_names=["labels", "song_index"],
        use_cpu=True,
    )
    kwargs.update(overrides)
    args = LCATrainingArguments(**kwargs)
    return LCATrainer(
        model=model,
        args=args,
        train_dataset=rows,
        eval_dataset=rows,
        data_collator=SliceCollator(build_feature_extractor(config), song_index_of),
        compute_metrics=LCAMetrics(num_labels=3),
    )


def _flat(parameters):
    return torch.cat([p.detach().reshape(-1).clone() for p in parameters])


class _Snapshots(TrainerCallback):
    """Counterfactual and main parameters at the end of every epoch."""

    def __init__(self, model):
        self.model = model
        self.cf, self.main = [], []

    def on_epoch_end(self, args, state, control, **kwargs):
        cf_ids = {id(p) for p in self.model.counterfactual_parameters()}
        self.cf.append(_flat(self.model.counterfactual_parameters()))
        self.main.append(_flat([p for p in self.model.parameters() if id(p) not in cf_ids and p.requires_grad]))


def test_plain_mode_is_cross_entropy_whatever_the_weights(tmp_path):
    trainer = _trainer(tmp_path, counterfactual="none", lambda_ce_main=0.1, lambda_ent_main=5.0)
    batch = trainer.data_collator(_slices()[:4])
    trainer.model.train()
    torch.manual_seed(1)
    loss = trainer.compute_loss(trainer.model, batch)
    torch.manual_seed(1)
    logits = trainer.model(input_values=batch["input_values"], attention_mask=batch["attention_mask"]).logits
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, batch["labels"]).item(), rel=1e-5)


def test_warmup_freezes_the_counterfactual_branch_then_trains_it(tmp_path):
    trainer = _trainer(tmp_path, epochs=3, warmup=2)
    model = trainer.model
    initial_cf = _flat(model.counterfactual_parameters())
    snapshots = _Snapshots(model)
    trainer.add_callback(snapshots)
    trainer.train()
    assert len(initial_cf) > 0
    # Warm-up epochs 1 and 2: the branch is bit-for-bit unchanged while the main network learns.
    assert torch.equal(snapshots.cf[0], initial_cf) and torch.equal(snapshots.cf[1], initial_cf)
    assert not torch.equal(snapshots.main[0], snapshots.main[1])
    # Epoch 3: the branch trains.
    assert not torch.equal(snapshots.cf[2], initial_cf)
    # Every term is logged separately, with the warm-up flag.
    train_logs = [log for log in trainer.state.log_history if "loss" in log]
    assert [log["cf_warmup"] for log in train_logs] == [1.0, 1.0, 0.0]
    for name in (
        "loss_ce_main",
        "loss_effect",
        "loss_ce_cf",
        "loss_ent_cf",
        "loss_ent_main",
        "loss_att",
    ):
        assert all(math.isfinite(log[name]) for log in train_logs), name
    # Optimizer state exists for the branch only once it has trained.
    cf_state = [trainer.optimizer.state.get(p) for p in model.counterfactual_parameters()]
    assert all(state for state in cf_state)


def test_eval_logs_every_term_and_the_counterfactual_metrics(tmp_path):
    trainer = _trainer(tmp_path, epochs=1, warmup=0)
    trainer.train()
    metrics = trainer.evaluate()
    for name in ("ce_main", "effect", "ce_cf", "ent_cf", "ent_main", "att"):
        assert math.isfinite(metrics[f"eval_loss_{name}"]), name
    assert "eval_counterfactual_frame_f1" in metrics and "eval_counterfactual_song_f1" in metrics
    assert metrics["eval_num_slices"] == 12 and metrics["eval_num_songs"] == 6
    # Evaluation leaves the model in eval mode afterwards for everything but the top-level flag it restored.
    assert not trainer.model.training


def test_random_mode_uses_only_cal_terms(tmp_path):
    trainer = _trainer(tmp_path, counterfactual="random", epochs=1, warmup=0)
    weights = trainer.effective_weights(warmup=False)
    assert weights["ce_cf"] == weights["ent_cf"] == weights["att"] == 0.0
    assert weights["effect"] == 1.0 and weights["ce_main"] == 0.7
    trainer.train()
    assert math.isfinite(trainer.state.log_history[0]["loss_effect"])


def test_resume_inside_warmup_reproduces_the_uninterrupted_run(tmp_path):
    common = dict(epochs=4, warmup=2, save_strategy="epoch", full_determinism=True)
    full = _trainer(tmp_path, name="full", **common)
    full.train()
    full_metrics = full.evaluate()
    full_weights = {k: v.clone() for k, v in full.model.state_dict().items()}

    # "Killed" after epoch 1 (inside the warm-up): a new process would start a new Trainer from the checkpoint.
    checkpoint = sorted(
        (tmp_path / "full").glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[1]),
    )[0]
    assert checkpoint.name == "checkpoint-3"  # 12 slices / batch 4 = 3 steps per epoch
    resumed = _trainer(tmp_path, name="resumed", **common)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    resumed_metrics = resumed.evaluate()
    for key, value in full_weights.items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    for key in ("eval_loss", "eval_frame_f1", "eval_song_f1", "eval_loss_att"):
        assert resumed_metrics[key] == full_metrics[key], key


class _CorruptAfterSave(TrainerCallback):
    """Turns the weights to NaN right after checkpoint `at_step` is saved: the next step's loss is NaN."""

    def __init__(self, model, at_step):
        self.model, self.at_step = model, at_step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            with torch.no_grad():
                for parameter in self.model.head.parameters():
                    parameter.fill_(float("nan"))


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, epochs=2, warmup=0, save_strategy="steps", save_steps=2)
    trainer.add_callback(_CorruptAfterSave(trainer.model, at_step=2))
    with pytest.raises(NonFiniteLossError, match="global step 3"):
        trainer.train()
    output = tmp_path / "run"
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-2"]
    reloaded = CRNNFGNLForAudioClassification.from_pretrained(output / "checkpoint-2")
    assert all(torch.isfinite(p).all() for p in reloaded.parameters())
    assert os.path.exists(output / "checkpoint-2" / "preprocessor_config.json")
