"""Configurations of the genremert models: GenreMERT (frozen MERT + time attention), CRNN_FGNL and the self-attention
tagger.

All carry the same `counterfactual` field, which switches on the learnable counterfactual attention
(LCA) branch used only in training:

- `"none"`: the plain model.
- `"learned"`: LCA (Lin et al., TASLP 2025): a second, learned attention of the same design.
- `"random"`: the CAL ablation (Rao et al., ICCV 2021): random counterfactual attention, no parameters.

This file may import only torch/transformers-level packages: it is copied next to the weights by
`save_pretrained` and executed with `trust_remote_code=True`.
"""

import math

from transformers import AutoConfig, HubertConfig, PretrainedConfig


try:  # inside a remote-code folder (transformers copies siblings imported this way)
    from .audio_genremert import SLICE_REMAINDERS, SONG_AGGREGATIONS
except ImportError:  # flat checkout
    from audio_genremert import SLICE_REMAINDERS, SONG_AGGREGATIONS


COUNTERFACTUAL_MODES = ("none", "learned", "random")
# Audio encoders GenreMERT's head can sit on (any that `AutoModel` builds from the config), by what they read: the raw
# waveform (`input_values (batch, samples)`) or spectrogram features from their own feature extractor.
BACKBONE_INPUTS = {
    "hubert": "waveform",  # MERT-v1 is a HuBERT-shaped encoder (the default)
    "wav2vec2": "waveform",
    "wav2vec2-conformer": "waveform",
    "wavlm": "waveform",
    "data2vec-audio": "waveform",
    "unispeech": "waveform",
    "unispeech-sat": "waveform",
    "sew": "waveform",
    "sew-d": "waveform",
    "audio-spectrogram-transformer": "features",
    "whisper": "features",
}
# The CAL ablation's random attention: renormalised to the main attention's sum (ours), or CAL's raw uniform [0, 2).
RANDOM_ATTENTION_SCALES = ("renormalised", "raw")
FGNL_SOFTMAX_AXES = ("key", "query")
# Outputs beside `logits` that `Trainer.predict` / `evaluate` leave out (Transformers' `keys_to_ignore_at_inference`):
# `compute_metrics` then gets the logits alone, as for any classifier. Ask for them by name (`ignore_keys=[]`).
INFERENCE_EXTRA_OUTPUTS = [
    "counterfactual_logits",
    "attention",
    "counterfactual_attention",
    "representation",
    "hidden_states",
    "attentions",
]
# What GenreMERT's time attention scores a frame from: its features' mean (the reference) or the whole vector.
TIME_ATTENTION_INPUTS = ("mean", "features")

# The audio-classification pipeline of a saved model folder: one pass per training-length slice,
# then the song-level answer (see pipeline_genremert.py).
DEFAULT_CUSTOM_PIPELINES = {
    "audio-classification": {
        "impl": "pipeline_genremert.SongLevelAudioClassificationPipeline",
        "pt": ["AutoModelForAudioClassification"],
        "tf": [],
        "type": "audio",
    }
}

# MERT-v1-95M expressed as a stock HubertConfig (NOTES §1b). `mask_time_prob` > 0 keeps the
# `masked_spec_embed` parameter so that MERT checkpoints load strictly; SpecAugment itself never
# runs because the frozen backbone is kept in eval mode.
MERT_V1_95M_BACKBONE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "feat_extract_norm": "group",
    "conv_dim": [512] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_bias": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "do_stable_layer_norm": False,
    "feat_proj_layer_norm": True,
    "layer_norm_eps": 1e-5,
    "mask_time_prob": 0.05,
}


def _check_choice(field: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"`{field}` must be one of {list(allowed)}, got {value!r}.")


def _check_label_ids(config) -> None:
    """`id2label` must name the classes 0 … num_labels − 1, each once (a gap such as keys 0, 1, 5 leaves a logit without
    a name and a name without a logit)."""
    keys = sorted(int(key) for key in (config.id2label or {}))
    if keys != list(range(len(keys))):
        raise ValueError(
            f"`id2label` must have the keys 0 … {len(keys) - 1} (one per class, no gap), got {keys}; renumber the labels "
            "from 0."
        )


def _check_positive(field: str, value, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{field}` must be {bound}, got {value!r}.")


def _check_probability(field: str, value) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{field}` must be a dropout probability in [0, 1), got {value!r}.")


def _check_mel_range(f_min, f_max, sampling_rate) -> None:
    """The mel filters' frequency range of a log-mel front end (CRNN_FGNL, the tagger)."""
    _check_positive("f_min", f_min, allow_zero=True)
    if f_max is not None and not f_min < f_max <= sampling_rate / 2:
        raise ValueError(f"`f_max` must be in (f_min={f_min}, sampling_rate/2={sampling_rate / 2}], got {f_max!r}.")


def _check_num_labels(num_labels) -> None:
    if not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"`num_labels` must be a positive number of classes, got {num_labels!r}.")


def song_rule_fields(slice_seconds, song_aggregation, vote_threshold, slice_overlap_seconds, slice_remainder) -> dict:
    """The validated fields that say how a recording is sliced and how its slices make the song answer."""
    _check_positive("slice_seconds", slice_seconds)
    if not math.isfinite(slice_seconds):
        raise ValueError(f"`slice_seconds` must be a finite number of seconds, got {slice_seconds!r}.")
    _check_choice("song_aggregation", song_aggregation, SONG_AGGREGATIONS)
    _check_choice("slice_remainder", slice_remainder, SLICE_REMAINDERS)
    if vote_threshold is not None and not 0.0 <= vote_threshold < 1.0:
        raise ValueError(f"`vote_threshold` must be in [0, 1) or None, got {vote_threshold!r}.")
    if not 0.0 <= slice_overlap_seconds < slice_seconds:
        raise ValueError(
            f"`slice_overlap_seconds` must be in [0, slice_seconds={slice_seconds}), got {slice_overlap_seconds!r}."
        )
    return {
        "slice_seconds": float(slice_seconds),
        "song_aggregation": song_aggregation,
        "vote_threshold": None if vote_threshold is None else float(vote_threshold),
        "slice_overlap_seconds": float(slice_overlap_seconds),
        "slice_remainder": slice_remainder,
    }


class GenreMERTConfig(PretrainedConfig):
    r"""
    Configuration of [`GenreMERTForAudioClassification`]: a frozen MERT backbone (a stock `HubertModel`),
    a learned 1×1 aggregation of its hidden layers, time attention pooling, a shared projection and a
    classifier. The defaults reproduce the reference genreMERT (94.40 M parameters with 10 labels).

    Args:
        backbone_config (`dict` or a transformers config, *optional*):
            The backbone: any audio encoder of `BACKBONE_INPUTS` that `AutoModel` builds (HuBERT/MERT, wav2vec2, WavLM,
            the Audio Spectrogram Transformer, Whisper's encoder, ...), as a config or a dict with its `model_type`.
            Defaults to the MERT-v1-95M shape (a `HubertConfig`).
        aggregation_layers (`list[int]`, *optional*):
            Which hidden states feed the layer aggregation (0 = the embeddings, i = layer i). Defaults
            to all of them (13 for MERT-v1-95M).
        attention_hidden_size (`int`, *optional*, defaults to 16):
            Channels of the time attention's hidden 1×1 convolution.
        time_attention_input (`str`, *optional*, defaults to `"mean"`):
            What the time attention scores a frame from: `"mean"`, the mean of the frame's features (the reference
            genreMERT: frames that differ in direction but not in mean look alike to it), or `"features"`, the whole
            feature vector (a 1×1 convolution hidden → `attention_hidden_size`; it can tell such frames apart).
        representation_size (`int`, *optional*, defaults to 32):
            Size of the shared projection between the pooled features and the classifier.
        classifier_dropout (`float`, *optional*, defaults to 0.3):
            Dropout on the pooled features of the main branch.
        counterfactual_dropout (`float`, *optional*, defaults to 0.6):
            Dropout on the pooled features of the counterfactual branch.
        counterfactual (`str`, *optional*, defaults to `"none"`):
            `"none"`, `"learned"` (LCA) or `"random"` (CAL ablation).
        random_attention (`str`, *optional*, defaults to `"renormalised"`):
            The CAL ablation's attention: uniform [0, 2) weights renormalised to the main attention's sum
            (`"renormalised"`, ours: the classifier sees features on the scale it was trained on), or left raw
            (`"raw"`, CAL's and the LCA reference's `rand * 2`).
        freeze_backbone (`bool`, *optional*, defaults to `True`):
            Keep the backbone frozen (no gradients) and in eval mode. `False` fine-tunes it.
        sampling_rate (`int`, *optional*, defaults to 24000):
            Sampling rate of `input_values` (MERT is trained at 24 kHz).
        slice_seconds (`float`, *optional*, defaults to 10.0):
            Length of the training slices; the pipeline classifies longer recordings slice by slice.
        song_aggregation (`str`, *optional*, defaults to `"vote"`):
            How slices make the song answer, in the song-level evaluation and in the pipeline alike: majority
            `"vote"` of the slices (the papers' rule) or `"mean"` of their probabilities.
        vote_threshold (`float`, *optional*):
            With `"vote"`, only slices whose top probability exceeds it vote (all of them when none does). Chosen on
            the validation split by `run_classification.py` and saved here, so the pipeline applies the rule whose
            figures the model card reports.
        slice_overlap_seconds (`float`, *optional*, defaults to 0.0):
            Overlap of consecutive slices (evaluation and pipeline).
        slice_remainder (`str`, *optional*, defaults to `"drop"`):
            The tail of a recording shorter than a hop is dropped (`"drop"`) or covered by one end-aligned slice
            (`"end"`). A recording shorter than one slice is zero-padded to one slice.
    """

    model_type = "genremert"
    keys_to_ignore_at_inference = INFERENCE_EXTRA_OUTPUTS
    _auto_class = "AutoConfig"  # save_pretrained writes auto_map and copies the code files
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config=None,
        aggregation_layers=None,
        attention_hidden_size=16,
        representation_size=32,
        classifier_dropout=0.3,
        counterfactual_dropout=0.6,
        counterfactual="none",
        random_attention="renormalised",
        freeze_backbone=True,
        sampling_rate=24000,
        slice_seconds=10.0,
        song_aggregation="vote",
        vote_threshold=None,
        slice_overlap_seconds=0.0,
        slice_remainder="drop",
        time_attention_input="mean",
        **kwargs,
    ):
        if backbone_config is None:
            backbone_config = HubertConfig(**MERT_V1_95M_BACKBONE)
        elif isinstance(backbone_config, dict):
            backbone_config = dict(backbone_config)
            model_type = backbone_config.pop("model_type", "hubert")  # MERT is a HuBERT-shaped encoder
            try:
                backbone_config = AutoConfig.for_model(model_type, **backbone_config)
            except ValueError as error:
                raise ValueError(
                    f"`backbone_config.model_type` {model_type!r} is not a model type transformers knows ({error})."
                ) from None
        elif not isinstance(backbone_config, PretrainedConfig):
            raise ValueError(
                f"`backbone_config` must be a dict or a transformers config, got {type(backbone_config).__name__}."
            )
        if backbone_config.model_type not in BACKBONE_INPUTS:
            raise ValueError(
                f"`backbone_config.model_type` must be an audio encoder of {sorted(BACKBONE_INPUTS)}, got "
                f"{backbone_config.model_type!r}."
            )
        self.backbone_config = backbone_config

        num_hidden_states = backbone_config.num_hidden_layers + 1  # embeddings + every layer
        if aggregation_layers is None:
            aggregation_layers = list(range(num_hidden_states))
        aggregation_layers = [int(layer) for layer in aggregation_layers]
        if not aggregation_layers:
            raise ValueError("`aggregation_layers` must name at least one hidden state.")
        for layer in aggregation_layers:
            if not 0 <= layer < num_hidden_states:
                raise ValueError(
                    f"`aggregation_layers` entries must be in [0, {num_hidden_states - 1}] (0 = embeddings, "
                    f"{num_hidden_states - 1} = last layer), got {layer}."
                )
        if len(set(aggregation_layers)) != len(aggregation_layers):
            raise ValueError(f"`aggregation_layers` must not repeat a layer, got {aggregation_layers}.")
        self.aggregation_layers = aggregation_layers

        _check_positive("attention_hidden_size", attention_hidden_size)
        _check_choice("time_attention_input", time_attention_input, TIME_ATTENTION_INPUTS)
        _check_positive("representation_size", representation_size)
        _check_probability("classifier_dropout", classifier_dropout)
        _check_probability("counterfactual_dropout", counterfactual_dropout)
        _check_choice("counterfactual", counterfactual, COUNTERFACTUAL_MODES)
        _check_choice("random_attention", random_attention, RANDOM_ATTENTION_SCALES)
        _check_positive("sampling_rate", sampling_rate)
        song_rule = song_rule_fields(
            slice_seconds, song_aggregation, vote_threshold, slice_overlap_seconds, slice_remainder
        )

        self.attention_hidden_size = attention_hidden_size
        self.time_attention_input = time_attention_input
        self.representation_size = representation_size
        self.classifier_dropout = classifier_dropout
        self.counterfactual_dropout = counterfactual_dropout
        self.counterfactual = counterfactual
        self.random_attention = random_attention
        self.freeze_backbone = freeze_backbone
        self.sampling_rate = sampling_rate
        for field, value in song_rule.items():
            setattr(self, field, value)
        kwargs.setdefault("custom_pipelines", DEFAULT_CUSTOM_PIPELINES)
        if kwargs.get("num_labels") is not None:
            _check_num_labels(kwargs["num_labels"])
        super().__init__(**kwargs)
        _check_label_ids(self)
        _check_num_labels(self.num_labels)

    @property
    def hidden_size(self) -> int:
        return self.backbone_config.hidden_size


class CRNNFGNLConfig(PretrainedConfig):
    r"""
    Configuration of [`CRNNFGNLForAudioClassification`]: log-mel front end → four conv blocks → the fully
    generalized non-local (FGNL) module (Kuo, Wei & Lin, AAAI 2021) → two GRUs → classifier. The defaults
    reproduce the official model (≈ 582.5 K trainable parameters with 20 labels).

    Args:
        sampling_rate (`int`, *optional*, defaults to 16000): rate of the raw waveform `input_values`.
        n_fft (`int`, *optional*, defaults to 2048): STFT size of the mel front end.
        hop_length (`int`, *optional*, defaults to 512): STFT hop.
        num_mel_bins (`int`, *optional*, defaults to 128): mel bands.
        f_min (`float`, *optional*, defaults to 0.0): lowest mel frequency.
        f_max (`float`, *optional*): highest mel frequency; defaults to the Nyquist frequency.
        top_db (`float`, *optional*, defaults to 80.0): dynamic range kept by the dB conversion.
        conv_channels (`list[int]`, *optional*, defaults to `[64, 128, 128, 128]`): conv block channels.
        conv_pool (`list[bool]`, *optional*, defaults to `[False, True, True, True]`): 2×2 max pool per block.
        conv_dropout (`float`, *optional*, defaults to 0.1): dropout after each conv block.
        fgnl_reduction (`int`, *optional*, defaults to 32): channel reduction of θ, φ, g (C' = C / reduction = 4).
        num_rolls (`int`, *optional*, defaults to 4): channel rolls of the non-local operation (K).
        fgnl_softmax_axis (`str`, *optional*, defaults to `"key"`): axis of the non-local affinity softmax. `"key"`
            (standard non-local: each query's weights over the keys sum to 1) or `"query"` (the official TensorFlow
            code). With `"query"` every roll has the same global average, so the MoSE roll attention is exactly
            uniform whatever its weights, and a counterfactual MoSE (LCA) cannot differ from the main one.
        gaussian_kernel_size (`int`, *optional*, defaults to 5): size of the fixed Gaussian filter.
        gaussian_sigma (`float`, *optional*, defaults to 0.707): its standard deviation.
        mose_hidden_size (`int`, *optional*, defaults to 16): hidden channels of the MoSE roll attention.
        counterfactual_attention (`str`, *optional*, defaults to `"mose"`): which attention LCA counterfactualises.
            `"mose"` (the paper): the MoSE roll attention; measured to barely move the prediction (docs/evidence.md).
            `"time"` (ours): the GRU frames are pooled by a time attention instead of the last state, and LCA's
            counterfactual is a second time attention: an attention with real capacity over the song's moments.
        time_attention_hidden_size (`int`, *optional*, defaults to 16): hidden size of that time attention.
        classifier_kernel_l2 (`float`, *optional*, defaults to 0.0): L2 penalty `λ·Σ W²` on the classifier's kernel
            (the official Keras model: 0.01), added to the training loss.
        classifier_activity_l1 (`float`, *optional*, defaults to 0.0): L1 activity penalty `λ·mean_batch Σ |logits|`
            on the classifier's output before the softmax (the official Keras model: 0.01).
        batch_norm_momentum (`float`, *optional*, defaults to 0.1): running-statistics momentum in PyTorch's
            convention (Keras' momentum 0.99 is 0.01 here).
        batch_norm_eps (`float`, *optional*, defaults to 1e-5): BatchNorm epsilon (Keras: 1e-3).
        initialization (`str`, *optional*, defaults to `"pytorch"`): `"pytorch"` (PyTorch's defaults) or `"keras"`
            (Glorot-uniform kernels, orthogonal GRU recurrent kernels, zero biases: the official model's).
        random_attention (`str`, *optional*, defaults to `"renormalised"`): as in [`GenreMERTConfig`].
        gru_hidden_size (`int`, *optional*, defaults to 32): size of both GRUs.
        classifier_dropout (`float`, *optional*, defaults to 0.3): dropout before the classifier.
        counterfactual (`str`, *optional*, defaults to `"none"`): `"none"`, `"learned"` or `"random"`.
        slice_seconds (`float`, *optional*, defaults to 5.0): training slice length (pipeline slicing).
        song_aggregation, vote_threshold, slice_overlap_seconds, slice_remainder: the song rule, as in
            [`GenreMERTConfig`].
    """

    model_type = "crnn_fgnl"
    keys_to_ignore_at_inference = INFERENCE_EXTRA_OUTPUTS
    _auto_class = "AutoConfig"  # save_pretrained writes auto_map and copies the code files

    def __init__(
        self,
        sampling_rate=16000,
        n_fft=2048,
        hop_length=512,
        num_mel_bins=128,
        f_min=0.0,
        f_max=None,
        top_db=80.0,
        conv_channels=(64, 128, 128, 128),
        conv_pool=(False, True, True, True),
        conv_dropout=0.1,
        fgnl_reduction=32,
        num_rolls=4,
        fgnl_softmax_axis="key",
        gaussian_kernel_size=5,
        gaussian_sigma=0.707,
        mose_hidden_size=16,
        counterfactual_attention="mose",
        time_attention_hidden_size=16,
        classifier_kernel_l2=0.0,
        classifier_activity_l1=0.0,
        batch_norm_momentum=0.1,
        batch_norm_eps=1e-5,
        initialization="pytorch",
        random_attention="renormalised",
        gru_hidden_size=32,
        classifier_dropout=0.3,
        counterfactual="none",
        slice_seconds=5.0,
        song_aggregation="vote",
        vote_threshold=None,
        slice_overlap_seconds=0.0,
        slice_remainder="drop",
        **kwargs,
    ):
        for field, value in (
            ("sampling_rate", sampling_rate),
            ("n_fft", n_fft),
            ("hop_length", hop_length),
            ("num_mel_bins", num_mel_bins),
            ("fgnl_reduction", fgnl_reduction),
            ("num_rolls", num_rolls),
            ("gaussian_kernel_size", gaussian_kernel_size),
            ("gaussian_sigma", gaussian_sigma),
            ("mose_hidden_size", mose_hidden_size),
            ("time_attention_hidden_size", time_attention_hidden_size),
            ("gru_hidden_size", gru_hidden_size),
        ):
            _check_positive(field, value)
        _check_mel_range(f_min, f_max, sampling_rate)
        _check_positive("top_db", top_db)
        conv_channels = [int(c) for c in conv_channels]
        conv_pool = [bool(p) for p in conv_pool]
        if not conv_channels or len(conv_channels) != len(conv_pool):
            raise ValueError(
                f"`conv_channels` and `conv_pool` must be non-empty and of equal length, got "
                f"{len(conv_channels)} and {len(conv_pool)}."
            )
        if len(conv_channels) < 2:
            raise ValueError("`conv_channels` needs at least 2 blocks: FGNL reads the last two.")
        for field, channels in (("conv_channels[-1]", conv_channels[-1]), ("conv_channels[-2]", conv_channels[-2])):
            if channels % fgnl_reduction != 0:
                raise ValueError(f"`{field}` ({channels}) must be divisible by `fgnl_reduction` ({fgnl_reduction}).")
        if conv_channels[-1] // fgnl_reduction < num_rolls:
            raise ValueError(
                f"`num_rolls` ({num_rolls}) must not exceed the reduced channels "
                f"conv_channels[-1] / fgnl_reduction = {conv_channels[-1] // fgnl_reduction}."
            )
        if gaussian_kernel_size % 2 != 1:
            raise ValueError(f"`gaussian_kernel_size` must be odd, got {gaussian_kernel_size}.")
        _check_probability("conv_dropout", conv_dropout)
        _check_probability("classifier_dropout", classifier_dropout)
        _check_choice("counterfactual", counterfactual, COUNTERFACTUAL_MODES)
        song_rule = song_rule_fields(
            slice_seconds, song_aggregation, vote_threshold, slice_overlap_seconds, slice_remainder
        )
        _check_choice("counterfactual_attention", counterfactual_attention, ("mose", "time"))
        _check_choice("initialization", initialization, ("pytorch", "keras"))
        _check_choice("random_attention", random_attention, RANDOM_ATTENTION_SCALES)
        _check_positive("classifier_kernel_l2", classifier_kernel_l2, allow_zero=True)
        _check_positive("classifier_activity_l1", classifier_activity_l1, allow_zero=True)
        _check_positive("batch_norm_eps", batch_norm_eps)
        if not 0.0 < batch_norm_momentum <= 1.0:
            raise ValueError(
                f"`batch_norm_momentum` must be in (0, 1] (PyTorch's convention: Keras' 0.99 is 0.01), got "
                f"{batch_norm_momentum!r}."
            )
        _check_choice("fgnl_softmax_axis", fgnl_softmax_axis, FGNL_SOFTMAX_AXES)

        self.sampling_rate = sampling_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.num_mel_bins = num_mel_bins
        self.f_min = float(f_min)
        self.f_max = f_max
        self.top_db = float(top_db)
        self.conv_channels = conv_channels
        self.conv_pool = conv_pool
        self.conv_dropout = conv_dropout
        self.fgnl_reduction = fgnl_reduction
        self.num_rolls = num_rolls
        self.fgnl_softmax_axis = fgnl_softmax_axis
        self.gaussian_kernel_size = gaussian_kernel_size
        self.gaussian_sigma = gaussian_sigma
        self.mose_hidden_size = mose_hidden_size
        self.counterfactual_attention = counterfactual_attention
        self.time_attention_hidden_size = time_attention_hidden_size
        self.classifier_kernel_l2 = float(classifier_kernel_l2)
        self.classifier_activity_l1 = float(classifier_activity_l1)
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.batch_norm_eps = float(batch_norm_eps)
        self.initialization = initialization
        self.random_attention = random_attention
        self.gru_hidden_size = gru_hidden_size
        self.classifier_dropout = classifier_dropout
        self.counterfactual = counterfactual
        for field, value in song_rule.items():
            setattr(self, field, value)
        kwargs.setdefault("custom_pipelines", DEFAULT_CUSTOM_PIPELINES)
        if kwargs.get("num_labels") is not None:
            _check_num_labels(kwargs["num_labels"])
        super().__init__(**kwargs)
        _check_label_ids(self)
        _check_num_labels(self.num_labels)


class SelfAttentionTaggerConfig(PretrainedConfig):
    r"""
    Configuration of [`SelfAttentionTaggerForAudioClassification`], after Won, Chun & Serra, "Toward Interpretable Music
    Tagging with Self-Attention" (2019): log-mel front end → residual conv blocks whose strides pool the frequency axis
    away → a classification token and learned positions → a small Transformer encoder (BERT layers) over time → the
    classification token's output → classifier. The defaults are the paper's (16 kHz, 512-point STFT, hop 256, 128
    mel bands, seven blocks, 2 layers of 256 with 8 heads, 15 s inputs) and make a multi-label tagger
    (`problem_type="multi_label_classification"`; pass `problem_type="single_label_classification"` for classes).

    Args:
        sampling_rate, n_fft, hop_length, num_mel_bins, f_min, f_max, top_db: the log-mel front end, as in
            [`CRNNFGNLConfig`] (defaults 16000, 512, 256, 128, 0.0, 8000.0, 80.0).
        conv_channels (`list[int]`, *optional*, defaults to `[128, 128, 256, 256, 256, 256, 256]`): channels of the
            residual conv blocks.
        conv_strides (`list[list[int]]`, *optional*): `[frequency, time]` stride of each block; defaults to the paper's
            `[2, 2]` ×3 then `[2, 1]` ×4, which takes 128 mel bands to 1 and divides time by 8. Frequency left after the
            blocks is max-pooled away.
        hidden_size (`int`, *optional*, defaults to 256): width of the Transformer (the last conv block is projected to
            it when the sizes differ).
        num_hidden_layers (`int`, *optional*, defaults to 2): Transformer layers.
        num_attention_heads (`int`, *optional*, defaults to 8): heads per layer.
        intermediate_size (`int`, *optional*, defaults to 1024): feed-forward size.
        hidden_act (`str`, *optional*, defaults to `"gelu"`): feed-forward activation (a transformers `ACT2FN` name).
        hidden_dropout_prob (`float`, *optional*, defaults to 0.4): dropout after the attention and feed-forward.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.5): dropout on the attention weights.
        max_position_embeddings (`int`, *optional*, defaults to 700): most time steps (+ the classification token) a
            slice may give.
        layer_norm_eps (`float`, *optional*, defaults to 1e-12), initializer_range (`float`, *optional*, defaults to
            0.02): as in BERT.
        classifier_dropout (`float`, *optional*, defaults to 0.5): dropout before the classifier.
        counterfactual (`str`, *optional*, defaults to `"none"`): `"none"`, `"learned"` (LCA) or `"random"` (CAL). The
            attention LCA counterfactualises is the classification token's attention in the last layer (what the
            classifier reads is made of it); see docs/tagging.md.
        random_attention (`str`, *optional*, defaults to `"renormalised"`): as in [`GenreMERTConfig`].
        slice_seconds (`float`, *optional*, defaults to 15.0): training slice length (the paper's input).
        song_aggregation (`str`, *optional*, defaults to `"mean"`): the mean of the slices' probabilities (tagging's
            rule); vote_threshold, slice_overlap_seconds, slice_remainder as in [`GenreMERTConfig`].
    """

    model_type = "self_attention_tagger"
    keys_to_ignore_at_inference = INFERENCE_EXTRA_OUTPUTS
    _auto_class = "AutoConfig"  # save_pretrained writes auto_map and copies the code files

    def __init__(
        self,
        sampling_rate=16000,
        n_fft=512,
        hop_length=256,
        num_mel_bins=128,
        f_min=0.0,
        f_max=8000.0,
        top_db=80.0,
        conv_channels=(128, 128, 256, 256, 256, 256, 256),
        conv_strides=None,
        hidden_size=256,
        num_hidden_layers=2,
        num_attention_heads=8,
        intermediate_size=1024,
        hidden_act="gelu",
        hidden_dropout_prob=0.4,
        attention_probs_dropout_prob=0.5,
        max_position_embeddings=700,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        classifier_dropout=0.5,
        counterfactual="none",
        random_attention="renormalised",
        slice_seconds=15.0,
        song_aggregation="mean",
        vote_threshold=None,
        slice_overlap_seconds=0.0,
        slice_remainder="drop",
        **kwargs,
    ):
        for field, value in (
            ("sampling_rate", sampling_rate),
            ("n_fft", n_fft),
            ("hop_length", hop_length),
            ("num_mel_bins", num_mel_bins),
            ("hidden_size", hidden_size),
            ("num_hidden_layers", num_hidden_layers),
            ("num_attention_heads", num_attention_heads),
            ("intermediate_size", intermediate_size),
            ("max_position_embeddings", max_position_embeddings),
            ("layer_norm_eps", layer_norm_eps),
            ("top_db", top_db),
        ):
            _check_positive(field, value)
        _check_mel_range(f_min, f_max, sampling_rate)
        _check_positive("initializer_range", initializer_range, allow_zero=True)
        conv_channels = [int(c) for c in conv_channels]
        if not conv_channels or min(conv_channels) < 1:
            raise ValueError(f"`conv_channels` must be a non-empty list of positive sizes, got {conv_channels}.")
        if conv_strides is None:
            conv_strides = [[2, 2] if i < 3 else [2, 1] for i in range(len(conv_channels))]
        conv_strides = [[int(stride) for stride in pair] for pair in conv_strides]
        if len(conv_strides) != len(conv_channels) or any(len(p) != 2 or min(p) < 1 for p in conv_strides):
            raise ValueError(
                f"`conv_strides` must give one [frequency, time] pair of positive strides per conv block "
                f"({len(conv_channels)}), got {conv_strides}."
            )
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({hidden_size}) must be divisible by `num_attention_heads` ({num_attention_heads})."
            )
        for field, value in (
            ("hidden_dropout_prob", hidden_dropout_prob),
            ("attention_probs_dropout_prob", attention_probs_dropout_prob),
            ("classifier_dropout", classifier_dropout),
        ):
            _check_probability(field, value)
        _check_choice("counterfactual", counterfactual, COUNTERFACTUAL_MODES)
        _check_choice("random_attention", random_attention, RANDOM_ATTENTION_SCALES)
        song_rule = song_rule_fields(
            slice_seconds, song_aggregation, vote_threshold, slice_overlap_seconds, slice_remainder
        )

        self.sampling_rate = sampling_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.num_mel_bins = num_mel_bins
        self.f_min = float(f_min)
        self.f_max = f_max
        self.top_db = float(top_db)
        self.conv_channels = conv_channels
        self.conv_strides = conv_strides
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.layer_norm_eps = float(layer_norm_eps)
        self.initializer_range = float(initializer_range)
        self.classifier_dropout = classifier_dropout
        self.counterfactual = counterfactual
        self.random_attention = random_attention
        for field, value in song_rule.items():
            setattr(self, field, value)
        kwargs.setdefault("custom_pipelines", DEFAULT_CUSTOM_PIPELINES)
        kwargs.setdefault("problem_type", "multi_label_classification")
        if kwargs.get("num_labels") is not None:
            _check_num_labels(kwargs["num_labels"])
        super().__init__(**kwargs)
        _check_label_ids(self)
        _check_num_labels(self.num_labels)


__all__ = ["GenreMERTConfig", "CRNNFGNLConfig", "SelfAttentionTaggerConfig", "COUNTERFACTUAL_MODES"]
