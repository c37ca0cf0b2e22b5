"""What the genremert models share: the counterfactual attention branch of LCA, the output type, input checks, the
common `PreTrainedModel` mixin and the feature extractor saved with every model folder.

The counterfactual branch ([`LCACounterfactualBranch`]) is written once and used by every model: with
`config.counterfactual = "learned"` (LCA, Lin et al.) it holds a second attention module of the same design as the
model's main attention, with `"random"` (CAL, Rao et al.) it draws a random attention. The branch runs only in train
mode; in eval mode it is not computed at all, and `remove_counterfactual_branch()` drops it for export.

This file is remote code (copied next to the weights by `save_pretrained`, executed with `trust_remote_code=True`): it
imports only torch, transformers and its siblings, and has no side effects on import.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import Wav2Vec2FeatureExtractor
from transformers import initialization as init
from transformers.audio_utils import mel_filter_bank
from transformers.utils import ModelOutput


try:  # inside a remote-code folder (transformers copies siblings imported this way)
    from .configuration_genremert import BACKBONE_INPUTS, COUNTERFACTUAL_MODES
except ImportError:  # flat checkout
    from configuration_genremert import BACKBONE_INPUTS, COUNTERFACTUAL_MODES

try:  # imported so that `save_pretrained` copies the pipeline named in `config.custom_pipelines`
    from .pipeline_genremert import SongLevelAudioClassificationPipeline  # noqa: F401
except ImportError:
    from pipeline_genremert import SongLevelAudioClassificationPipeline  # noqa: F401


# model_type → whether its feature extractor normalises each slice to zero mean and unit variance.
NORMALIZED_INPUT_MODELS = {"genremert": True, "crnn_fgnl": False, "self_attention_tagger": False}


@dataclass
class LCAClassifierOutput(ModelOutput):
    """
    Output of both genremert classifiers.

    Args:
        loss (`torch.FloatTensor` of shape `(1,)`, *optional*, returned when `labels` is given):
            Plain cross-entropy of `logits` (multi-label: binary cross-entropy of every tag). The LCA loss terms are
            computed by the trainer.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Scores of the main branch.
        counterfactual_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            Scores of the counterfactual branch; only in train mode with `config.counterfactual != "none"`.
        attention (`torch.FloatTensor`):
            The main attention. GenreMERT: time weights `(batch_size, frames)` summing to 1 over unmasked frames.
            CRNN_FGNL: MoSE roll weights `(batch_size, num_rolls)` summing to 1 (or time weights with
            `counterfactual_attention="time"`). Self-attention tagger: the classification token's last-layer attention
            `(batch_size, heads, tokens)`, summing to 1 over the tokens of each head.
        counterfactual_attention (`torch.FloatTensor`, *optional*):
            The counterfactual attention, same shape and condition as `counterfactual_logits`.
        representation (`torch.FloatTensor` of shape `(batch_size, representation_size)`):
            The features the classifier reads (GenreMERT: the shared projection; CRNN_FGNL: the last GRU state;
            the tagger: the classification token's output).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True` or
            `config.output_hidden_states`):
            The model's hidden states, as Transformers' models return them: GenreMERT: the backbone's (the embeddings
            and every layer, `(batch_size, frames, hidden_size)` each; with `backbone_hidden_states` given, those);
            CRNN_FGNL: the output of every conv block `(batch_size, channels, mel, frames)` and the GRU frames
            `(batch_size, frames, gru_hidden_size)`; the tagger: the token embeddings and every layer's output
            `(batch_size, tokens, hidden_size)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True` or
            `config.output_attentions`):
            Every layer's attention maps (the tagger: for heat maps; GenreMERT: its backbone's, with the eager backend).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    counterfactual_logits: torch.FloatTensor | None = None
    attention: torch.FloatTensor | None = None
    counterfactual_attention: torch.FloatTensor | None = None
    representation: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class LCAModelOutput(ModelOutput):
    """
    Output of the three base models (`GenreMERTModel`, `CRNNFGNLModel`, `SelfAttentionTaggerModel`): the embedding a
    classifier reads, for retrieval, probing or t-SNE.

    Args:
        last_hidden_state (`torch.FloatTensor`):
            The sequence the embedding is pooled from: GenreMERT: the aggregated frames `(batch_size, frames,
            hidden_size)`; CRNN_FGNL: the GRU frames `(batch_size, frames, gru_hidden_size)`; the tagger: the tokens
            entering the last layer `(batch_size, 1 + frames, hidden_size)` (the classification token first).
        pooler_output (`torch.FloatTensor` of shape `(batch_size, embedding_size)`):
            The pooled embedding the classifier head reads: GenreMERT: the attention-pooled frames (before the
            projection); CRNN_FGNL: the last GRU state; the tagger: the classification token's output.
        attention (`torch.FloatTensor`):
            The main attention, as in [`LCAClassifierOutput`].
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): as in [`LCAClassifierOutput`].
        attentions (`tuple(torch.FloatTensor)`, *optional*): as in [`LCAClassifierOutput`].
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    attention: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def check_waveform(input_values, attention_mask, minimum_samples: int, sampling_rate: int) -> None:
    """Raises a `ValueError` naming the problem when `input_values`/`attention_mask` cannot be classified.

    The checks of the values themselves (NaN / inf, too few valid samples under the mask) run eagerly only: under
    `torch.export` / `torch.compile` they are skipped, so tracing never branches on data (the shape checks stay, as
    guards on the traced shapes)."""
    if not isinstance(input_values, torch.Tensor):
        raise TypeError(
            f"`input_values` must be a torch.Tensor of shape (batch, samples), got {type(input_values).__name__}; "
            "use the feature extractor with `return_tensors='pt'`."
        )
    if not torch.is_floating_point(input_values):
        raise ValueError(
            f"`input_values` must be a floating-point waveform (e.g. float32), got dtype {input_values.dtype}; "
            "integer PCM must be converted to float first."
        )
    if input_values.dim() != 2:
        raise ValueError(
            f"`input_values` must have shape (batch, samples), got shape {tuple(input_values.shape)}"
            + ("; add a batch dimension with `input_values[None]`." if input_values.dim() == 1 else ".")
        )
    batch_size, num_samples = input_values.shape
    if batch_size == 0 or num_samples == 0:
        raise ValueError(f"`input_values` is empty: shape {tuple(input_values.shape)}.")
    if num_samples < minimum_samples:
        raise ValueError(
            f"`input_values` is too short: {num_samples} samples ({num_samples / sampling_rate:.4f} s), the model "
            f"needs at least {minimum_samples} samples ({minimum_samples / sampling_rate:.4f} s at {sampling_rate} Hz)."
        )
    tracing = torch.compiler.is_compiling()
    if not tracing and not torch.isfinite(input_values).all():
        raise ValueError("`input_values` contains NaN or infinite values.")
    if attention_mask is not None:
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_values.shape:
            shape = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)
            raise ValueError(
                f"`attention_mask` must have the shape of `input_values` {tuple(input_values.shape)}, got {shape}."
            )
        valid_samples = attention_mask.long().sum(-1)
        if not tracing and (valid_samples < minimum_samples).any():
            shortest = int(valid_samples.min())
            raise ValueError(
                f"`attention_mask` leaves only {shortest} valid samples in a row; the model needs at least "
                f"{minimum_samples} samples per example."
            )


def is_multi_label(config) -> bool:
    """Transformers' convention: `problem_type="multi_label_classification"` means independent tags (sigmoid, BCE)."""
    return getattr(config, "problem_type", None) == "multi_label_classification"


def check_log_mel_features(input_features, num_mel_bins: int, minimum_frames: int = 1) -> torch.Tensor:
    """`input_features`, the dB log-mel `(batch, num_mel_bins, frames)` of `compute_log_mel`, or a `ValueError` naming
    what is wrong."""
    if not isinstance(input_features, torch.Tensor) or not torch.is_floating_point(input_features):
        raise ValueError("`input_features` must be a floating-point torch.Tensor (the dB log-mel).")
    expected = f"(batch, {num_mel_bins}, frames)"
    if input_features.dim() != 3 or input_features.shape[1] != num_mel_bins:
        raise ValueError(f"`input_features` must have shape {expected}, got {tuple(input_features.shape)}.")
    if input_features.shape[0] == 0 or input_features.shape[2] < minimum_frames:
        raise ValueError(
            f"`input_features` must have at least one example and {minimum_frames} frames, got shape "
            f"{tuple(input_features.shape)}."
        )
    return input_features


def check_labels(labels: torch.Tensor, batch_size: int, num_labels: int, multi_label: bool = False) -> None:
    """Single-label: integer class ids `(batch,)`. Multi-label: multi-hot (or soft) targets `(batch, num_labels)` in
    [0, 1]."""
    if multi_label:
        if labels.dim() != 2 or tuple(labels.shape) != (batch_size, num_labels):
            hint = (
                "; class ids need `config.problem_type = 'single_label_classification'` (this model's problem_type is "
                "'multi_label_classification')"
                if labels.dim() == 1
                else ""
            )
            raise ValueError(
                f"multi-label `labels` must be multi-hot targets of shape ({batch_size}, {num_labels}) (one column per "
                f"tag), got {tuple(labels.shape)}{hint}."
            )
        values = labels.float()
        if labels.numel() and (not torch.isfinite(values).all() or values.min() < 0 or values.max() > 1):
            raise ValueError(
                f"multi-label `labels` must be in [0, 1] (1 = the tag applies), got values in [{values.min()}, "
                f"{values.max()}]."
            )
        return
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        hint = (
            "; multi-hot targets need `config.problem_type = 'multi_label_classification'`"
            if labels.dim() == 2 and labels.shape[1] == num_labels
            else ""
        )
        raise ValueError(f"`labels` must have shape ({batch_size},), got {tuple(labels.shape)}{hint}.")
    if torch.is_floating_point(labels):
        raise ValueError(f"`labels` must hold integer class ids, got dtype {labels.dtype}.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(f"`labels` must be in [0, {num_labels - 1}], got values in [{labels.min()}, {labels.max()}].")


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool = False) -> torch.Tensor:
    """Cross-entropy of softmax `logits` with class ids, or (multi-label) the binary cross-entropy of every tag's
    sigmoid with float multi-hot targets, averaged over examples and tags (Transformers' `BCEWithLogitsLoss`)."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits.float(), labels.to(logits.device).float())
    return F.cross_entropy(logits.float(), labels.to(logits.device).long())


class LogMelSpectrogram(nn.Module):
    """Log-mel front end on the model's device (CRNN_FGNL and the self-attention tagger; the config gives
    `sampling_rate`, `n_fft`, `hop_length`, `num_mel_bins`, `f_min`, `f_max`, `top_db`): STFT power (Hann window, centred, reflect padding) → slaney mel
    filters (librosa's and nnAudio's `MelSpectrogram` defaults) → dB as in the official code (`amplitude_to_db`
    applied to power: 20·log10, ref 1, amin 1e-5, `top_db` below each example's maximum).

    The window and filters are fixed, non-persistent buffers: not trained and not in the state dict."""

    def __init__(self, config):
        super().__init__()
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.top_db = config.top_db
        window, mel_filters = self.compute_buffers(config)
        self.register_buffer("window", window, persistent=False)  # (n_fft,)
        self.register_buffer("mel_filters", mel_filters, persistent=False)  # (n_fft // 2 + 1, num_mel_bins)

    @staticmethod
    def compute_buffers(config) -> tuple[torch.Tensor, torch.Tensor]:
        window = torch.hann_window(config.n_fft, periodic=True, dtype=torch.float32, device="cpu")
        mel_filters = mel_filter_bank(
            num_frequency_bins=config.n_fft // 2 + 1,
            num_mel_filters=config.num_mel_bins,
            min_frequency=config.f_min,
            max_frequency=config.f_max if config.f_max is not None else config.sampling_rate / 2,
            sampling_rate=config.sampling_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        return window, torch.from_numpy(mel_filters.astype(np.float32))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        # waveform: (batch, samples)
        # Always in float32 (also in a half-precision model): the dB conversion needs the range.
        spectrum = torch.stft(
            waveform.float(),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window.float(),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # (batch, n_fft // 2 + 1, frames)
        power = spectrum.real.square() + spectrum.imag.square()
        mel = torch.matmul(self.mel_filters.float().T, power)  # (batch, num_mel_bins, frames)
        log_mel = 20.0 * torch.log10(mel.clamp_min(1e-5))
        peak = log_mel.amax(dim=(1, 2), keepdim=True)
        return torch.maximum(log_mel, peak - self.top_db)  # (batch, num_mel_bins, frames)


class LCACounterfactualBranch(nn.Module):
    """
    The counterfactual attention of LCA, written once for both models.

    - `"learned"` (LCA): `attention` is a second module of the same design as the model's main attention (GenreMERT:
      a second time attention; CRNN_FGNL: a second MoSE); it is trained by the LCA loss terms to be a *distracting*
      attention, so that the main attention learns what differs from it.
    - `"random"` (CAL ablation): no parameters; each position draws a weight uniform in [0, 2) (as in the CAL paper),
      masked positions get 0, and the weights are renormalised to the main attention's normalisation (sum 1 over the
      valid frames for GenreMERT, over the rolls for CRNN_FGNL). The renormalisation keeps the counterfactual pooled
      features on the scale of the main ones, which the shared classifier expects.

    The branch is only called in train mode; the models never compute it in eval mode.
    """

    def __init__(self, config, attention: nn.Module | None = None):
        super().__init__()
        if config.counterfactual not in ("learned", "random"):
            raise ValueError(
                f"`counterfactual` must be 'learned' or 'random' to build a counterfactual branch, got "
                f"{config.counterfactual!r} (allowed values: {list(COUNTERFACTUAL_MODES)})."
            )
        if config.counterfactual == "learned" and attention is None:
            raise ValueError("A 'learned' counterfactual branch needs an attention module.")
        self.mode = config.counterfactual
        self.attention = attention if self.mode == "learned" else None
        self.raw = getattr(config, "random_attention", "renormalised") == "raw"

    def forward(self, main_attention: torch.Tensor, *attention_inputs, mask: torch.Tensor | None = None):
        """
        Args:
            main_attention: the main attention `(batch, positions)`, for the shape, dtype and device of the output.
            attention_inputs: the arguments of the main attention module, passed unchanged to the learned one.
            mask: `(batch, positions)` bool, `True` where a position is valid (random mode only; the learned
                attention gets its mask through `attention_inputs`).
        Returns:
            the counterfactual attention, same shape and normalisation as `main_attention`.
        """
        if self.mode == "learned":
            return self.attention(*attention_inputs)
        weights = 2.0 * torch.rand_like(main_attention)  # (batch, positions), uniform in [0, 2)
        if mask is not None:
            weights = weights * mask.to(weights.dtype)
        if self.raw:
            return weights  # CAL's and the LCA reference's unnormalised `rand * 2`
        return weights / weights.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)


def base_model_shortcut(name: str) -> property:
    """A classifier's read-only shortcut to its base model's attribute `name` (a module, property or method), so that
    `classifier.<name>` keeps meaning what it meant before the base model existed."""
    return property(
        lambda self: getattr(self.base_model, name), doc=f"The base model's `{name}` (`model.base_model.{name}`)."
    )


class LCAModelMixin:
    """What the genremert models share: the counterfactual branch's API, weight init and `save_pretrained`."""

    # Auto class → class name (in the model's own file) that `save_pretrained` writes into `config.auto_map`.
    _auto_map_classes: dict[str, str] = {}
    # The legacy flat layout: classifiers saved before the base models existed kept the base model's modules at the
    # top level; `from_pretrained` maps those keys under `base_model_prefix` (a checkpoint in today's layout has
    # no key these patterns match).
    _legacy_base_modules: tuple[str, ...] = ()
    _legacy_key_mapping: dict[str, str] = {}  # further renames (regex → replacement), where a module moved or split

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`; a classifier also loads the legacy flat layout (see
        `_legacy_base_modules`, `_legacy_key_mapping`) unless a `key_mapping` is given."""
        if (cls._legacy_base_modules or cls._legacy_key_mapping) and kwargs.get("key_mapping") is None:
            mapping = dict(cls._legacy_key_mapping)
            if cls._legacy_base_modules:
                modules = "|".join(cls._legacy_base_modules)
                mapping[rf"^({modules})\."] = rf"{cls.base_model_prefix}.\1."
            kwargs["key_mapping"] = mapping
        return super().from_pretrained(*args, **kwargs)

    def _build_counterfactual_branch(self, config, build_attention) -> "LCACounterfactualBranch | None":
        """The counterfactual branch of `config.counterfactual` (`build_attention()` makes the learned attention), or
        `None`. It is built without drawing from the global random state, and `initialize_weights` initialises it
        after the rest, also without drawing: with the same seed, models with and without the branch (plain, CAL,
        LCA) start from the same main weights and leave the same random state, so their comparisons are paired."""
        if config.counterfactual == "none":
            return None
        with torch.random.fork_rng(devices=[]):
            attention = build_attention() if config.counterfactual == "learned" else None
            return LCACounterfactualBranch(config, attention)

    def initialize_weights(self):
        """`PreTrainedModel.initialize_weights` for everything but the counterfactual branch, then the branch's under
        a forked random state (see `_build_counterfactual_branch`)."""
        branch = getattr(self, "counterfactual_branch", None)
        if branch is None:
            return super().initialize_weights()
        self._modules["counterfactual_branch"] = None  # the main model, initialised as if it had no branch
        try:
            super().initialize_weights()
        finally:
            self._modules["counterfactual_branch"] = branch
        cuda_devices = sorted({p.device.index or 0 for p in branch.parameters() if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=cuda_devices), torch.no_grad(), init.guard_torch_init_functions():
            branch.smart_apply(self._initialize_weights, self.is_custom_code())  # `smart_apply`: set by the call above

    def counterfactual_parameters(self) -> list[nn.Parameter]:
        """The counterfactual branch's parameters (empty for `"none"` and `"random"`); the trainer freezes them
        during the warm-up epochs."""
        if self.counterfactual_branch is None:
            return []
        return list(self.counterfactual_branch.parameters())

    def inert_counterfactual_reason(self) -> str | None:
        """Why LCA's attention terms cannot act in this configuration (the counterfactual attention receives no
        gradient), or `None`. The trainer warns with it at the start of training."""
        return None

    def output_classifier(self) -> nn.Linear:
        """The last linear layer (representation → labels): what a transfer to another label set re-initialises."""
        return self.head.classifier

    def remove_counterfactual_branch(self):
        """Drops the counterfactual branch in place for export and sets `config.counterfactual = "none"`.

        The result has exactly the parameters of a model built with `counterfactual="none"`, and identical eval
        logits (the branch never runs in eval mode). Returns the model.
        """
        self.counterfactual_branch = None
        if hasattr(self, "counterfactual_dropout"):
            self.counterfactual_dropout = None
        self.config.counterfactual = "none"
        return self

    def _classifier_output(self, labels, return_dict: bool, **fields):
        """The output of every model: `fields` as an `LCAClassifierOutput`, plus the plain loss of the main logits when
        `labels` are given: cross-entropy, or for `problem_type="multi_label_classification"` the binary
        cross-entropy of the tags (the LCA terms are computed by the trainer)."""
        logits = fields["logits"]
        loss = None
        if labels is not None:
            multi_label = is_multi_label(self.config)
            check_labels(labels, logits.shape[0], self.config.num_labels, multi_label)
            loss = classification_loss(logits, labels, multi_label) + self.regularization_loss(logits)
        output = LCAClassifierOutput(loss=loss, **fields)
        return output if return_dict else output.to_tuple()

    def regularization_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """Penalties the model adds to its training loss (zero unless the config asks for them; CRNN_FGNL's
        `classifier_kernel_l2` and `classifier_activity_l1` reproduce the official Keras model's)."""
        return logits.new_zeros(())

    def _use_counterfactual_branch(self, return_counterfactual: bool | None) -> bool:
        """Whether a forward pass computes the branch: in train mode by default; `return_counterfactual=True` asks for
        it in eval mode too (e.g. a validation LCA loss; dropout is then off), `False` skips it."""
        if self.counterfactual_branch is None:
            return False
        return self.training if return_counterfactual is None else bool(return_counterfactual)

    @torch.no_grad()
    def _init_weights(self, module):
        """PyTorch's default initialisation (what the reference code used) for the trainable layers; each model adds
        its own modules' rules (fixed buffers recomputed from the config) in `_init_model_weights`."""
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.GRU):
            bound = 1.0 / math.sqrt(module.hidden_size)
            for parameter in module.parameters():
                init.uniform_(parameter, -bound, bound)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        self._init_model_weights(module)

    def _init_model_weights(self, module) -> None:
        """Model-specific initialisation of `module` (overridden by each model)."""

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the model's `preprocessor_config.json` (from
        [`build_feature_extractor`]) so that every saved folder, Trainer checkpoints included, works in the
        audio-classification pipeline."""
        # both Auto classes in `auto_map`, so that remote code finds the base model in a classifier's folder and the
        # classifier in a base model's folder (`AutoModel` / `AutoModelForAudioClassification`, trust_remote_code=True)
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        for auto_class, model_class in self._auto_map_classes.items():
            auto_map.setdefault(auto_class, f"{type(self).__module__.split('.')[-1]}.{model_class}")
        self.config.auto_map = auto_map
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            build_feature_extractor(self.config).save_pretrained(save_directory)
        return result


def build_feature_extractor(config):
    """The feature extractor saved with every model folder.

    GenreMERT on a waveform backbone (MERT/HuBERT, wav2vec2, WavLM, ...): `Wav2Vec2FeatureExtractor` at
    `config.sampling_rate`, zero-mean unit-variance normalisation per slice (what MERT expects). GenreMERT on a
    spectrogram backbone (AST, Whisper): that backbone's own feature extractor at `config.sampling_rate`, sized to its
    config. CRNN_FGNL and the tagger: 16 kHz raw waveform (the log-mel front end is inside the model). Waveform extractors return the
    attention mask for padded batches.
    """
    model_type = getattr(config, "model_type", None)
    if model_type not in NORMALIZED_INPUT_MODELS:
        raise ValueError(
            f"`build_feature_extractor` needs the config of a genremert model (model_type one of "
            f"{sorted(NORMALIZED_INPUT_MODELS)}), got {type(config).__name__} with model_type {model_type!r}."
        )
    backbone = getattr(config, "backbone_config", None)
    if backbone is not None and BACKBONE_INPUTS.get(backbone.model_type) == "features":
        import transformers
        from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING_NAMES

        extractor_class = getattr(transformers, FEATURE_EXTRACTOR_MAPPING_NAMES[backbone.model_type])
        if backbone.model_type == "whisper":  # its encoder reads exactly 2 × max_source_positions frames
            chunk_seconds = 2 * backbone.max_source_positions * 160 / config.sampling_rate
            return extractor_class(
                feature_size=backbone.num_mel_bins, sampling_rate=config.sampling_rate, chunk_length=chunk_seconds
            )
        return extractor_class(
            sampling_rate=config.sampling_rate, num_mel_bins=backbone.num_mel_bins, max_length=backbone.max_length
        )
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=config.sampling_rate,
        padding_value=0.0,
        do_normalize=NORMALIZED_INPUT_MODELS[model_type],
        return_attention_mask=True,
    )


__all__ = [
    "LCAClassifierOutput",
    "LCACounterfactualBranch",
    "LCAModelMixin",
    "LCAModelOutput",
    "base_model_shortcut",
    "LogMelSpectrogram",
    "build_feature_extractor",
    "check_labels",
    "check_log_mel_features",
    "check_waveform",
    "classification_loss",
    "is_multi_label",
]
