"""The Transformers model contract, ModelTester style on tiny configs, for every model with the counterfactual branch on
and off: hidden states and attentions with the config fallback, `torch.export`, attention backends, gradient
checkpointing, `keys_to_ignore_at_inference` with Transformers' own example `compute_metrics`, `freeze_feature_encoder`,
the problem-type message, and the registered song pipeline."""

import numpy as np
import pytest
import torch
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config, tiny_self_attention_tagger_config

import genremert
from genremert import (
    CRNNFGNLForAudioClassification,
    GenreMERTForAudioClassification,
    SelfAttentionTaggerForAudioClassification,
)


MODELS = {
    "genremert": (GenreMERTForAudioClassification, tiny_genremert_config, 24000),
    "crnn_fgnl": (CRNNFGNLForAudioClassification, tiny_crnn_fgnl_config, 16000),
    "self_attention_tagger": (SelfAttentionTaggerForAudioClassification, tiny_self_attention_tagger_config, 16000),
}
CASES = [(name, counterfactual) for name in MODELS for counterfactual in ("none", "learned")]


def build(name, counterfactual="none", **overrides):
    model_class, make_config, rate = MODELS[name]
    torch.manual_seed(0)
    config = make_config(counterfactual=counterfactual, **overrides)
    seconds = config.slice_seconds
    return model_class(config).eval(), torch.randn(2, int(rate * seconds), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name,counterfactual", CASES)
def test_hidden_states_and_attentions_follow_the_keyword_then_the_config(name, counterfactual):
    # Attention maps come from the eager backend (Transformers' rule: `config.output_attentions` refuses SDPA).
    model, inputs = build(name, counterfactual, attn_implementation="eager")
    if name == "genremert":
        assert model.backbone.config._attn_implementation == "eager"
    plain = model(inputs)
    assert plain.hidden_states is None and plain.attentions is None
    asked = model(inputs, output_hidden_states=True, output_attentions=True)
    assert isinstance(asked.hidden_states, tuple) and len(asked.hidden_states) >= 2
    assert all(state.shape[0] == 2 for state in asked.hidden_states)
    assert isinstance(asked.attentions, tuple) and len(asked.attentions) >= 1
    torch.testing.assert_close(asked.logits, plain.logits)
    model.config.output_hidden_states = True
    model.config.output_attentions = True
    fallback = model(inputs)
    assert len(fallback.hidden_states) == len(asked.hidden_states)
    assert len(fallback.attentions) == len(asked.attentions)
    as_tuple = model(inputs, return_dict=False)  # Transformers' tuple form: the fields that are set, in order
    torch.testing.assert_close(as_tuple[0], plain.logits)
    assert any(isinstance(item, tuple) for item in as_tuple)


def test_genremert_hidden_states_are_the_backbones():
    model, inputs = build("genremert")
    outputs = model(inputs, output_hidden_states=True)
    assert len(outputs.hidden_states) == model.config.backbone_config.num_hidden_layers + 1
    stacked = model.backbone_hidden_states(inputs)  # (batch, layers, frames, hidden)
    for position, layer in enumerate(model.config.aggregation_layers):
        torch.testing.assert_close(outputs.hidden_states[layer], stacked[:, position])


@pytest.mark.parametrize("name,counterfactual", CASES)
def test_torch_export_matches_eager_with_a_dynamic_batch(name, counterfactual):
    from torch.export import Dim, export

    model, inputs = build(name, counterfactual)
    # CRNN_FGNL's GRUs are unrolled by torch.export: its slice length is fixed at export (the length it was trained on).
    length = Dim.STATIC if name == "crnn_fgnl" else Dim.AUTO
    program = export(model, (inputs,), dynamic_shapes={"input_values": {0: Dim("batch", min=1, max=64), 1: length}})
    more = torch.randn(3, inputs.shape[1], generator=torch.Generator().manual_seed(2))
    for batch in (inputs, more):
        torch.testing.assert_close(program.module()(batch).logits, model(batch).logits, rtol=1e-5, atol=1e-5)
    if name != "crnn_fgnl":  # a dynamic length too
        longer = torch.randn(2, int(inputs.shape[1] * 1.5), generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(program.module()(longer).logits, model(longer).logits, rtol=1e-5, atol=1e-5)


def test_the_eager_input_checks_still_refuse_bad_input():
    model, inputs = build("crnn_fgnl")
    inputs[0, 10] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(inputs)


def test_genremert_passes_the_attention_backend_to_its_backbone(tmp_path):
    model, inputs = build("genremert")
    model.save_pretrained(tmp_path)
    logits = {}
    for backend in ("eager", "sdpa"):
        loaded = GenreMERTForAudioClassification.from_pretrained(tmp_path, attn_implementation=backend).eval()
        assert loaded.config._attn_implementation == backend
        assert loaded.backbone.config._attn_implementation == backend
        logits[backend] = loaded(inputs).logits
    torch.testing.assert_close(logits["sdpa"], logits["eager"], rtol=1e-4, atol=1e-5)
    eager = GenreMERTForAudioClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    attentions = eager(inputs, output_attentions=True).attentions
    assert len(attentions) == model.config.backbone_config.num_hidden_layers


def test_the_tagger_sdpa_path_equals_eager():
    model, inputs = build("self_attention_tagger", "learned")
    model.set_attn_implementation("sdpa")
    fused = model(inputs, output_hidden_states=True)
    model.set_attn_implementation("eager")
    eager = model(inputs, output_hidden_states=True)
    torch.testing.assert_close(fused.logits, eager.logits, rtol=1e-5, atol=1e-6)
    for a, b in zip(fused.hidden_states, eager.hidden_states):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    model.set_attn_implementation("sdpa")  # the maps are asked for: computed eagerly even under SDPA
    maps = model(inputs, output_attentions=True).attentions
    assert maps[0].shape[:2] == (2, model.config.num_attention_heads)


@pytest.mark.parametrize("name", ["genremert", "self_attention_tagger"])
def test_gradient_checkpointing_gives_the_same_gradients(name):
    overrides = {"freeze_backbone": False} if name == "genremert" else {}
    gradients = []
    for checkpointing in (False, True):
        model, inputs = build(name, **overrides)
        model.train()
        model.config.classifier_dropout = 0.0
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        if name == "genremert":
            model.backbone.config.layerdrop = 0.0
            model.backbone.config.mask_time_prob = 0.0
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            assert model.is_gradient_checkpointing
        model(inputs).logits.sum().backward()
        gradients.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert gradients[0].keys() == gradients[1].keys() and len(gradients[0]) > 10
    for key in gradients[0]:
        torch.testing.assert_close(gradients[1][key], gradients[0][key], rtol=1e-5, atol=1e-6)


def test_crnn_fgnl_says_it_has_no_gradient_checkpointing():
    model, _ = build("crnn_fgnl")
    with pytest.raises(ValueError, match="does not support (gradient|activation) checkpointing"):
        model.gradient_checkpointing_enable()


@pytest.mark.parametrize("name", list(MODELS))
def test_freeze_feature_encoder_freezes_the_front_end_only(name):
    model, _ = build(name, freeze_backbone=False) if name == "genremert" else build(name)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    model.freeze_feature_encoder()
    frozen = trainable - {n for n, p in model.named_parameters() if p.requires_grad}
    assert frozen and trainable - frozen
    prefixes = {
        "genremert": "backbone.feature_extractor",
        "crnn_fgnl": "conv_blocks",
        "self_attention_tagger": "conv_blocks",
    }
    assert any(prefixes[name] in n for n in frozen)
    assert not any("classifier" in n for n in frozen)
    # a frozen front end's BatchNorms keep their statistics in train mode (the example script trains in train mode)
    buffers = {n: b.clone() for n, b in model.named_buffers() if "running_mean" in n and prefixes[name] in n}
    model.train()
    rate = MODELS[name][2]
    model(torch.randn(2, int(rate * model.config.slice_seconds), generator=torch.Generator().manual_seed(4)))
    for buffer_name, before in buffers.items():
        assert torch.equal(dict(model.named_buffers())[buffer_name], before), f"{buffer_name} moved"


def test_a_multi_label_model_given_class_ids_names_problem_type():
    model, inputs = build("self_attention_tagger")
    assert model.config.problem_type == "multi_label_classification"
    with pytest.raises(ValueError, match="problem_type = 'single_label_classification'"):
        model(inputs, labels=torch.tensor([0, 1]))


@pytest.mark.parametrize("name,counterfactual", CASES)
def test_the_audio_example_trainer_setup_evaluates_with_its_own_compute_metrics(name, counterfactual, tmp_path):
    """A copy of `examples/pytorch/audio-classification/run_audio_classification.py`'s Trainer set-up: a plain
    `Trainer`, the model's own forward, and its `compute_metrics` unchanged (argmax of `eval_pred.predictions`)."""
    from transformers import Trainer, TrainingArguments

    # The example is single-label classification: the tagger is configured so, as a user of the example would.
    overrides = {"problem_type": "single_label_classification"} if name == "self_attention_tagger" else {}
    model, _ = build(name, counterfactual, **overrides)
    model_class, make_config, rate = MODELS[name]
    length = int(rate * model.config.slice_seconds)
    rng = np.random.default_rng(0)
    rows = [
        {"input_values": rng.standard_normal(length).astype(np.float32), "labels": index % model.config.num_labels}
        for index in range(8)
    ]

    def compute_metrics(eval_pred):  # the example's, verbatim apart from the metric object (evaluate is offline)
        predictions = np.argmax(eval_pred.predictions, axis=1)
        return {"accuracy": float((predictions == eval_pred.label_ids).mean())}

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        num_train_epochs=1,
        learning_rate=1e-3,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        remove_unused_columns=False,
    )
    model.freeze_feature_encoder()  # the example's default --freeze_feature_encoder
    trainer = Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows, compute_metrics=compute_metrics)
    trainer.train()
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    predictions = trainer.predict(rows).predictions
    assert isinstance(predictions, np.ndarray) and predictions.shape == (8, model.config.num_labels)
    trainer.compute_metrics = None  # the example's metric reads logits only; the extra outputs are for other readers
    everything = trainer.predict(rows, ignore_keys=[]).predictions  # the extra outputs, when asked for by name
    assert isinstance(everything, tuple) and len(everything) > 1
    trainer.save_model(str(tmp_path / "saved"))
    reloaded = model_class.from_pretrained(tmp_path / "saved").eval()
    batch = torch.from_numpy(np.stack([row["input_values"] for row in rows[:2]]))
    torch.testing.assert_close(reloaded(batch).logits, model.eval()(batch).logits)


def test_after_import_the_song_pipeline_needs_no_remote_code(tmp_path):
    from transformers import pipeline

    model, _ = build("crnn_fgnl")
    model.save_pretrained(tmp_path)
    genremert.build_feature_extractor(model.config).save_pretrained(tmp_path)
    classifier = pipeline("genremert-audio-classification", model=str(tmp_path))
    assert type(classifier).__name__ == "SongLevelAudioClassificationPipeline"
    answer = classifier(0.1 * np.random.default_rng(0).standard_normal(32000).astype(np.float32), top_k=1)
    assert answer[0]["label"] in model.config.id2label.values()
    with pytest.raises(ValueError, match="trust_remote_code"):  # the folder's own copy still needs the opt-in
        pipeline("audio-classification", model=str(tmp_path))
