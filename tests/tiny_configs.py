"""Tiny configurations of the three models, shared by every test module (ModelTester style: fast on CPU)."""

from configuration_genremert import CRNNFGNLConfig, GenreMERTConfig, SelfAttentionTaggerConfig


# A 2-layer HuBERT with hidden size 32 and an 80× conv stack: 300 frames per second of 24 kHz audio.
TINY_BACKBONE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "conv_dim": [16, 16, 16],
    "conv_stride": [5, 4, 4],
    "conv_kernel": [10, 4, 4],
    "conv_bias": False,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
    "feat_proj_layer_norm": True,
    "mask_time_prob": 0.05,
}


def tiny_genremert_config(**overrides) -> GenreMERTConfig:
    kwargs = dict(
        backbone_config=dict(TINY_BACKBONE),
        attention_hidden_size=4,
        representation_size=8,
        num_labels=3,
        slice_seconds=1.0,
    )
    kwargs.update(overrides)
    return GenreMERTConfig(**kwargs)


def tiny_crnn_fgnl_config(**overrides) -> CRNNFGNLConfig:
    kwargs = dict(
        sampling_rate=16000,
        n_fft=512,
        hop_length=256,
        num_mel_bins=32,
        conv_channels=[4, 8, 8, 8],
        fgnl_reduction=2,  # C' = 8 / 2 = 4 channels, 4 rolls
        num_rolls=4,
        mose_hidden_size=4,
        gru_hidden_size=8,
        num_labels=3,
        slice_seconds=1.0,
    )
    kwargs.update(overrides)
    return CRNNFGNLConfig(**kwargs)


def tiny_self_attention_tagger_config(**overrides) -> SelfAttentionTaggerConfig:
    kwargs = dict(
        sampling_rate=16000,
        n_fft=512,
        hop_length=256,
        num_mel_bins=16,
        conv_channels=[4, 8, 8],
        conv_strides=[[2, 2], [2, 2], [2, 1]],  # 16 mel bands → 2 (max-pooled away), time / 4
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
        num_labels=3,
        slice_seconds=1.0,
    )
    kwargs.update(overrides)
    return SelfAttentionTaggerConfig(**kwargs)
