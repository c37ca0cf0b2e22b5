"""Conversion of the reference authors' Lightning checkpoints (genreMERT.ckpt, genreMERT_LCA.ckpt) into GenreMERT.

The tests write checkpoints in the reference layout themselves (from a tiny GenreMERT whose weights they know), then
check the converted model reproduces the original's outputs and that wrong or missing keys fail by name.
"""

import json
import sys

import pytest
import torch
from tiny_configs import TINY_BACKBONE, tiny_genremert_config

from genremert import GenreMERTForAudioClassification
from genremert.publishing import conversion as convert


# Our key → the reference key, the inverse of the converter's tables (the test's own copy of the layout).
OUR_TO_REFERENCE = {
    "genremert.layer_aggregation.conv.weight": "aggregator.weight",
    "genremert.layer_aggregation.conv.bias": "aggregator.bias",
    "genremert.time_attention.hidden_conv.weight": "time_att.attention.2.weight",
    "genremert.time_attention.hidden_conv.bias": "time_att.attention.2.bias",
    "genremert.time_attention.score_conv.weight": "time_att.attention.4.weight",
    "genremert.time_attention.score_conv.bias": "time_att.attention.4.bias",
    "counterfactual_branch.attention.hidden_conv.weight": "time_att_cf.attention.2.weight",
    "counterfactual_branch.attention.hidden_conv.bias": "time_att_cf.attention.2.bias",
    "counterfactual_branch.attention.score_conv.weight": "time_att_cf.attention.4.weight",
    "counterfactual_branch.attention.score_conv.bias": "time_att_cf.attention.4.bias",
    "head.projection.weight": "hidden_layer.weight",
    "head.projection.bias": "hidden_layer.bias",
    "head.classifier.weight": "ouput_layer.weight",
    "head.classifier.bias": "ouput_layer.bias",
}
POS_CONV = "encoder.pos_conv_embed.conv."


def reference_state_dict(model, old_weight_norm=True):
    """`model`'s weights laid out as the reference LightningModule's state_dict (Conv2d attention kernels, the MERT
    backbone under `mert.`, optionally with the old `weight_g`/`weight_v` weight-norm names)."""
    state = {}
    for key, tensor in model.state_dict().items():
        if key.startswith("genremert.backbone."):
            key = "mert." + key[len("genremert.backbone.") :]
            if old_weight_norm:
                key = key.replace(POS_CONV + "parametrizations.weight.original0", POS_CONV + "weight_g")
                key = key.replace(POS_CONV + "parametrizations.weight.original1", POS_CONV + "weight_v")
            state[key] = tensor.clone()
        else:
            reference_key = OUR_TO_REFERENCE[key]
            if ".attention." in reference_key and reference_key.endswith("weight"):
                tensor = tensor.unsqueeze(-1)  # Conv1d (out, in, 1) → Conv2d (out, in, 1, 1)
            state[reference_key] = tensor.clone()
    return state


def write_checkpoint(path, state_dict, **extra):
    checkpoint = {
        "state_dict": state_dict,
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.2.0.post0",
        "hyper_parameters": {
            "mert": "m-a-p/MERT-v1-95M",
            "num_class": 3,
            "learning_rate": 1e-4,
            "config": {
                "mert_feature_layer": "all",
                "representation_dim": 8,
                "main_dropout": 0.3,
                "cf_dropout": 0.6,
                "mose_cf": True,
                "random_att": False,
            },
        },
    }
    checkpoint.update(extra)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def lca_model():
    torch.manual_seed(0)
    model = GenreMERTForAudioClassification(tiny_genremert_config(counterfactual="learned"))
    with torch.no_grad():  # non-trivial head weights, so that a swapped key changes the outputs
        for name, parameter in model.named_parameters():
            if not name.startswith("genremert.backbone."):
                parameter.normal_(0.0, 0.5)
    return model.eval()


def waveform_batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(2, 24000, generator=generator)  # two 1 s slices at 24 kHz


def counterfactual_outputs(model, input_values):
    """Main and counterfactual outputs of `model` in eval mode (dropout off: deterministic)."""
    with torch.no_grad():
        return model.eval()(input_values, return_counterfactual=True)


def test_lca_checkpoint_converts_with_identical_outputs(tmp_path, lca_model):
    path = write_checkpoint(tmp_path / "genreMERT_LCA.ckpt", reference_state_dict(lca_model))
    converted = convert.convert_reference_checkpoint(path, backbone_config=TINY_BACKBONE, labels=["a", "b", "c"])

    assert converted.config.counterfactual == "learned"
    assert converted.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert converted.config.representation_size == 8 and converted.config.classifier_dropout == 0.3
    input_values = waveform_batch()
    with torch.no_grad():
        torch.testing.assert_close(converted(input_values).logits, lca_model(input_values).logits, rtol=0, atol=0)
    expected = counterfactual_outputs(lca_model, input_values)
    actual = counterfactual_outputs(converted, input_values)
    torch.testing.assert_close(actual.counterfactual_attention, expected.counterfactual_attention, rtol=0, atol=0)
    torch.testing.assert_close(actual.counterfactual_logits, expected.counterfactual_logits, rtol=0, atol=0)


def test_drop_counterfactual_gives_the_plain_model(tmp_path, lca_model):
    path = write_checkpoint(tmp_path / "genreMERT_LCA.ckpt", reference_state_dict(lca_model, old_weight_norm=False))
    converted = convert.convert_reference_checkpoint(path, backbone_config=TINY_BACKBONE, drop_counterfactual=True)
    plain = GenreMERTForAudioClassification(tiny_genremert_config())

    assert converted.config.counterfactual == "none" and converted.counterfactual_branch is None
    assert converted.num_parameters() == plain.num_parameters()
    with torch.no_grad():
        torch.testing.assert_close(
            converted(waveform_batch()).logits, lca_model(waveform_batch()).logits, rtol=0, atol=0
        )


def test_plain_checkpoint_has_no_counterfactual_branch(tmp_path):
    torch.manual_seed(2)
    plain = GenreMERTForAudioClassification(tiny_genremert_config()).eval()
    path = write_checkpoint(tmp_path / "genreMERT.ckpt", reference_state_dict(plain))
    converted = convert.convert_reference_checkpoint(path, backbone_config=TINY_BACKBONE)
    assert converted.config.counterfactual == "none"
    with torch.no_grad():
        torch.testing.assert_close(converted(waveform_batch()).logits, plain(waveform_batch()).logits, rtol=0, atol=0)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda state: state.pop("ouput_layer.bias"), "ouput_layer.bias"),
        (lambda state: state.pop("time_att_cf.attention.4.weight"), "time_att_cf.attention.4.weight"),
        (
            lambda state: state.pop("mert.encoder.layers.1.attention.k_proj.weight"),
            "encoder.layers.1.attention.k_proj.weight",
        ),
        (lambda state: state.__setitem__("time_att.attention.3.weight", torch.zeros(1)), "time_att.attention.3.weight"),
        (
            lambda state: state.__setitem__("mert.encoder.extra_norm.weight", torch.zeros(1)),
            "encoder.extra_norm.weight",
        ),
        (
            lambda state: state.__setitem__("time_att.attention.4.weight", torch.zeros(1, 5, 1, 1)),
            "time_att.attention.4.weight",
        ),
    ],
    ids=["missing-head", "missing-counterfactual", "missing-mert", "unexpected-head", "unexpected-mert", "wrong-shape"],
)
def test_wrong_or_missing_key_fails_with_its_name(tmp_path, lca_model, edit, message):
    state = reference_state_dict(lca_model)
    edit(state)
    path = write_checkpoint(tmp_path / "broken.ckpt", state)
    with pytest.raises(convert.ConversionError, match=message.replace(".", r"\.")):
        convert.convert_reference_checkpoint(path, backbone_config=TINY_BACKBONE)


def test_not_a_lightning_checkpoint_is_refused(tmp_path, lca_model):
    path = tmp_path / "bare_state_dict.ckpt"
    torch.save(reference_state_dict(lca_model), path)
    with pytest.raises(convert.ConversionError, match="'state_dict'"):
        convert.convert_reference_checkpoint(path, backbone_config=TINY_BACKBONE)
    with pytest.raises(convert.ConversionError, match="does not exist"):
        convert.convert_reference_checkpoint(tmp_path / "missing.ckpt", backbone_config=TINY_BACKBONE)


class Payload:
    """An arbitrary object: loading it would run code, so weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_arbitrary_pickled_objects_are_refused(tmp_path, lca_model):
    path = write_checkpoint(tmp_path / "evil.ckpt", reference_state_dict(lca_model), callbacks={"x": Payload()})
    with pytest.raises(convert.ConversionError, match="weights_only=True"):
        convert.convert_reference_checkpoint(path, backbone_config=TINY_BACKBONE)


def test_lightning_attribute_dict_hyper_parameters_load(tmp_path, lca_model, monkeypatch):
    """Real Lightning checkpoints store `hyper_parameters` as an `AttributeDict`; it loads as a plain dict."""
    import types

    module = types.ModuleType("lightning.fabric.utilities.data")

    class AttributeDict(dict):
        pass

    AttributeDict.__module__ = module.__name__
    AttributeDict.__qualname__ = "AttributeDict"
    module.AttributeDict = AttributeDict
    for name in ("lightning", "lightning.fabric", "lightning.fabric.utilities"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    path = tmp_path / "attribute_dict.ckpt"
    hyper_parameters = AttributeDict(config={"main_dropout": 0.25, "cf_dropout": 0.5})
    write_checkpoint(path, reference_state_dict(lca_model), hyper_parameters=hyper_parameters)
    for name in ("lightning.fabric.utilities.data", "lightning.fabric.utilities", "lightning.fabric", "lightning"):
        monkeypatch.delitem(sys.modules, name)  # the converter runs where Lightning is not installed

    converted = convert.convert_reference_checkpoint(path, backbone_config=TINY_BACKBONE)
    assert converted.config.classifier_dropout == 0.25 and converted.config.counterfactual_dropout == 0.5


def test_cli_writes_a_loadable_model_folder(tmp_path, lca_model, capsys):
    path = write_checkpoint(tmp_path / "genreMERT_LCA.ckpt", reference_state_dict(lca_model))
    backbone = tmp_path / "backbone.json"
    backbone.write_text(json.dumps(TINY_BACKBONE))
    output_dir = tmp_path / "converted"
    exit_code = convert.main(
        [
            "--checkpoint",
            str(path),
            "--output_dir",
            str(output_dir),
            "--backbone_config",
            str(backbone),
            "--labels",
            "x,y,z",
            "--drop_counterfactual",
        ]
    )
    assert exit_code == 0
    assert "counterfactual='none'" in capsys.readouterr().out
    reloaded = GenreMERTForAudioClassification.from_pretrained(output_dir, use_safetensors=True).eval()
    assert reloaded.config.id2label[2] == "z" and reloaded.config.counterfactual == "none"
    assert (output_dir / "preprocessor_config.json").is_file()
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(waveform_batch()).logits, lca_model(waveform_batch()).logits, rtol=0, atol=0
        )

    broken = write_checkpoint(
        tmp_path / "broken.ckpt",
        {k: v for k, v in reference_state_dict(lca_model).items() if k != "hidden_layer.weight"},
    )
    exit_code = convert.main(
        ["--checkpoint", str(broken), "--output_dir", str(tmp_path / "never"), "--backbone_config", str(backbone)]
    )
    assert exit_code == 1 and "hidden_layer.weight" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
