"""Tests of both configurations: defaults, validation errors that name the field, serialisation round trips."""

import pytest
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config
from transformers import AutoConfig, HubertConfig

import genremert  # noqa: F401  (registers the configs)
from configuration_genremert import CRNNFGNLConfig, GenreMERTConfig


def test_genremert_defaults_are_mert_v1_95m():
    config = GenreMERTConfig()
    backbone = config.backbone_config
    assert isinstance(backbone, HubertConfig)
    assert (backbone.hidden_size, backbone.num_hidden_layers, backbone.conv_stride) == (768, 12, [5, 2, 2, 2, 2, 2, 2])
    assert config.aggregation_layers == list(range(13))
    assert (config.attention_hidden_size, config.representation_size) == (16, 32)
    assert (config.classifier_dropout, config.counterfactual_dropout) == (0.3, 0.6)
    assert (config.counterfactual, config.freeze_backbone, config.sampling_rate) == ("none", True, 24000)


def test_crnn_fgnl_defaults_are_the_paper_model():
    config = CRNNFGNLConfig()
    assert (config.sampling_rate, config.n_fft, config.hop_length, config.num_mel_bins) == (16000, 2048, 512, 128)
    assert config.conv_channels[-1] // config.fgnl_reduction == 4  # C' = 4
    assert (config.num_rolls, config.gru_hidden_size, config.gaussian_kernel_size) == (4, 32, 5)


@pytest.mark.parametrize(
    "factory, field, value, expected",
    [
        (GenreMERTConfig, "counterfactual", "sometimes", "['none', 'learned', 'random']"),
        (CRNNFGNLConfig, "counterfactual", "cal", "['none', 'learned', 'random']"),
        (GenreMERTConfig, "classifier_dropout", 1.5, "[0, 1)"),
        (GenreMERTConfig, "counterfactual_dropout", -0.1, "[0, 1)"),
        (GenreMERTConfig, "aggregation_layers", [0, 13], "[0, 12]"),
        (GenreMERTConfig, "representation_size", 0, "> 0"),
        (GenreMERTConfig, "song_aggregation", "max", "['vote', 'mean']"),
        (CRNNFGNLConfig, "hop_length", 0, "> 0"),
        (CRNNFGNLConfig, "gaussian_kernel_size", 4, "odd"),
        (CRNNFGNLConfig, "num_rolls", 8, "must not exceed"),
        (CRNNFGNLConfig, "f_max", 9000, "sampling_rate/2"),
    ],
)
def test_invalid_values_name_the_field(factory, field, value, expected):
    with pytest.raises(ValueError) as error:
        factory(**{field: value})
    assert field in str(error.value) and expected in str(error.value)


def test_backbone_config_type_is_checked():
    with pytest.raises(ValueError, match="backbone_config"):
        GenreMERTConfig(backbone_config=42)


@pytest.mark.parametrize("factory", [tiny_genremert_config, tiny_crnn_fgnl_config])
def test_config_round_trip(factory, tmp_path):
    config = factory(counterfactual="learned", id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is type(config)
    without_path = lambda c: {k: v for k, v in c.to_dict().items() if k != "_name_or_path"}  # noqa: E731
    assert without_path(loaded) == without_path(config)
    assert loaded.id2label == {0: "a", 1: "b", 2: "c"}
    if isinstance(config, GenreMERTConfig):
        assert isinstance(loaded.backbone_config, HubertConfig)
        assert loaded.backbone_config.hidden_size == config.backbone_config.hidden_size
