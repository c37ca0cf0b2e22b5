"""PyTorch genremert models: GenreMERT and CRNN_FGNL, each with an optional learnable counterfactual attention branch.

- [`GenreMERTForAudioClassification`]: 24 kHz waveform → frozen MERT backbone (a stock `HubertModel`) → learned 1×1
  aggregation of its hidden layers → time attention → shared projection → classifier.
- [`CRNNFGNLForAudioClassification`]: 16 kHz waveform → log-mel front end (inside the model) → four conv blocks →
  fully generalized non-local (FGNL) block whose channel rolls are mixed by a MoSE attention → two GRUs → classifier.

The counterfactual branch ([`LCACounterfactualBranch`]) is written once and used by both models: with
`config.counterfactual = "learned"` (LCA, Lin et al.) it holds a second attention module of the same design as the
main one (GenreMERT: a second time attention; CRNN_FGNL: a second MoSE), with `"random"` (CAL, Rao et al.) it draws a
random attention. The branch runs only in train mode; in eval mode it is not computed at all, and
`remove_counterfactual_branch()` drops it for export.

This file is copied next to the weights by `save_pretrained` and executed with `trust_remote_code=True`: it imports
only torch, numpy, transformers and huggingface_hub, and its siblings.
"""

import json
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from transformers import (
    AutoConfig,
    AutoModelForAudioClassification,
    HubertConfig,
    HubertModel,
    PreTrainedModel,
    Wav2Vec2FeatureExtractor,
)
from transformers import initialization as init
from transformers.audio_utils import mel_filter_bank
from transformers.utils import ModelOutput


try:  # inside a remote-code folder (transformers copies siblings imported this way)
    from .configuration_genremert import COUNTERFACTUAL_MODES, CRNNFGNLConfig, GenreMERTConfig
except ImportError:  # flat checkout: `import modeling_genremert`
    from configuration_genremert import COUNTERFACTUAL_MODES, CRNNFGNLConfig, GenreMERTConfig

try:  # imported so that `save_pretrained` copies the pipeline named in `config.custom_pipelines`
    from .pipeline_genremert import SongLevelAudioClassificationPipeline  # noqa: F401
except ImportError:
    from pipeline_genremert import SongLevelAudioClassificationPipeline  # noqa: F401


# ----------------------------------------------------------------------------------------------------------------------
# Outputs and input checks
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class LCAClassifierOutput(ModelOutput):
    """
    Output of both genremert classifiers.

    Args:
        loss (`torch.FloatTensor` of shape `(1,)`, *optional*, returned when `labels` is given):
            Plain cross-entropy of `logits`. The LCA loss terms are computed by the trainer.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Scores of the main branch.
        counterfactual_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            Scores of the counterfactual branch; only in train mode with `config.counterfactual != "none"`.
        attention (`torch.FloatTensor`):
            The main attention. GenreMERT: time weights `(batch_size, frames)` summing to 1 over unmasked frames.
            CRNN_FGNL: MoSE roll weights `(batch_size, num_rolls)` summing to 1.
        counterfactual_attention (`torch.FloatTensor`, *optional*):
            The counterfactual attention, same shape and condition as `counterfactual_logits`.
        representation (`torch.FloatTensor` of shape `(batch_size, representation_size)`):
            The features the classifier reads (GenreMERT: the shared projection; CRNN_FGNL: the last GRU state).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    counterfactual_logits: torch.FloatTensor | None = None
    attention: torch.FloatTensor | None = None
    counterfactual_attention: torch.FloatTensor | None = None
    representation: torch.FloatTensor | None = None


def _check_waveform(input_values, attention_mask, minimum_samples: int, sampling_rate: int) -> None:
    """Raises a `ValueError` naming the problem when `input_values`/`attention_mask` cannot be classified."""
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
    if not torch.isfinite(input_values).all():
        raise ValueError("`input_values` contains NaN or infinite values.")
    if attention_mask is not None:
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_values.shape:
            shape = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)
            raise ValueError(
                f"`attention_mask` must have the shape of `input_values` {tuple(input_values.shape)}, got {shape}."
            )
        valid_samples = attention_mask.long().sum(-1)
        if (valid_samples < minimum_samples).any():
            shortest = int(valid_samples.min())
            raise ValueError(
                f"`attention_mask` leaves only {shortest} valid samples in a row; the model needs at least "
                f"{minimum_samples} samples per example."
            )


def _check_labels(labels: torch.Tensor, batch_size: int, num_labels: int) -> None:
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        raise ValueError(f"`labels` must have shape ({batch_size},), got {tuple(labels.shape)}.")
    if torch.is_floating_point(labels):
        raise ValueError(f"`labels` must hold integer class ids, got dtype {labels.dtype}.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(f"`labels` must be in [0, {num_labels - 1}], got values in [{labels.min()}, {labels.max()}].")


# ----------------------------------------------------------------------------------------------------------------------
# The counterfactual branch, shared by both models
# ----------------------------------------------------------------------------------------------------------------------


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
        return weights / weights.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)


class LCAModelMixin:
    """What both genremert models share: the counterfactual branch's API, weight init and `save_pretrained`."""

    def counterfactual_parameters(self) -> list[nn.Parameter]:
        """The counterfactual branch's parameters (empty for `"none"` and `"random"`); the trainer freezes them
        during the warm-up epochs."""
        if self.counterfactual_branch is None:
            return []
        return list(self.counterfactual_branch.parameters())

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
        """The output of both models: `fields` as an `LCAClassifierOutput`, plus the plain cross-entropy of the main
        logits when `labels` are given (the LCA terms are computed by the trainer)."""
        logits = fields["logits"]
        loss = None
        if labels is not None:
            _check_labels(labels, logits.shape[0], self.config.num_labels)
            loss = F.cross_entropy(logits, labels.to(logits.device))
        output = LCAClassifierOutput(loss=loss, **fields)
        return output if return_dict else output.to_tuple()

    def _use_counterfactual_branch(self, return_counterfactual: bool | None) -> bool:
        """Whether a forward pass computes the branch: in train mode by default; `return_counterfactual=True` asks for
        it in eval mode too (e.g. a validation LCA loss; dropout is then off), `False` skips it."""
        if self.counterfactual_branch is None:
            return False
        return self.training if return_counterfactual is None else bool(return_counterfactual)

    @torch.no_grad()
    def _init_weights(self, module):
        """PyTorch's default initialisation (what the reference code used) for the trainable layers, and the fixed
        buffers (mel filters, STFT window, Gaussian kernel) recomputed from the config."""
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
        if isinstance(module, GenreMERTLayerAggregation):
            # Start as the plain mean of the chosen layers (as HubertForSequenceClassification's layer weights).
            init.constant_(module.conv.weight, 1.0 / module.conv.in_channels)
            init.zeros_(module.conv.bias)
        elif isinstance(module, CRNNFGNLLogMel):
            window, mel_filters = module.compute_buffers(self.config)
            init.copy_(module.window, window)
            init.copy_(module.mel_filters, mel_filters)
        elif isinstance(module, CRNNFGNLGaussianBlur):
            init.copy_(module.kernel, module.compute_kernel(self.config))

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the model's `preprocessor_config.json` (from
        [`build_feature_extractor`]) so that every saved folder, Trainer checkpoints included, works in the
        audio-classification pipeline."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            build_feature_extractor(self.config).save_pretrained(save_directory)
        return result


def build_feature_extractor(config) -> Wav2Vec2FeatureExtractor:
    """The feature extractor saved with every model folder.

    GenreMERT: 24 kHz, zero-mean unit-variance normalisation per slice (what MERT expects). CRNN_FGNL: 16 kHz, raw
    waveform (the log-mel front end is inside the model). Both return the attention mask for padded batches.
    """
    if isinstance(config, GenreMERTConfig) or getattr(config, "model_type", None) == "genremert":
        do_normalize = True
    elif isinstance(config, CRNNFGNLConfig) or getattr(config, "model_type", None) == "crnn_fgnl":
        do_normalize = False
    else:
        raise ValueError(
            f"`build_feature_extractor` needs a GenreMERTConfig or CRNNFGNLConfig, got {type(config).__name__}."
        )
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=config.sampling_rate,
        padding_value=0.0,
        do_normalize=do_normalize,
        return_attention_mask=True,
    )


# ----------------------------------------------------------------------------------------------------------------------
# GenreMERT
# ----------------------------------------------------------------------------------------------------------------------


class GenreMERTLayerAggregation(nn.Module):
    """Learned 1×1 convolution over the chosen hidden states: a weighted sum of layers plus a bias."""

    def __init__(self, config: GenreMERTConfig):
        super().__init__()
        self.conv = nn.Conv2d(len(config.aggregation_layers), 1, kernel_size=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # hidden_states: (batch, layers, frames, hidden)
        return self.conv(hidden_states)[:, 0]  # (batch, frames, hidden)


class GenreMERTTimeAttention(nn.Module):
    """Time attention of the reference genreMERT: mean over the features of each frame → 1×1 conv 1→16 → tanh →
    1×1 conv 16→1 → softmax over time. Padded frames (`frame_mask == False`) get weight 0."""

    def __init__(self, config: GenreMERTConfig):
        super().__init__()
        self.hidden_conv = nn.Conv1d(1, config.attention_hidden_size, kernel_size=1)
        self.activation = nn.Tanh()
        self.score_conv = nn.Conv1d(config.attention_hidden_size, 1, kernel_size=1)

    def forward(self, hidden_states: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        # hidden_states: (batch, frames, hidden); frame_mask: (batch, frames) bool
        scores = hidden_states.mean(dim=-1).unsqueeze(1)  # (batch, 1, frames)
        scores = self.score_conv(self.activation(self.hidden_conv(scores)))[:, 0]  # (batch, frames)
        if frame_mask is not None:
            scores = scores.masked_fill(~frame_mask, torch.finfo(scores.dtype).min)
        return scores.softmax(dim=-1)  # (batch, frames)


class GenreMERTClassificationHead(nn.Module):
    """Shared projection (hidden → representation) and classifier, used by the main and counterfactual branches."""

    def __init__(self, config: GenreMERTConfig):
        super().__init__()
        self.projection = nn.Linear(config.hidden_size, config.representation_size)
        self.classifier = nn.Linear(config.representation_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        representation = self.projection(pooled)  # (batch, representation)
        return representation, self.classifier(representation)  # (batch, num_labels)


class GenreMERTPreTrainedModel(LCAModelMixin, PreTrainedModel):
    config: GenreMERTConfig
    config_class = GenreMERTConfig
    base_model_prefix = "genremert"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = False
    accepts_loss_kwargs = False  # `loss` is a batch mean: the Trainer scales it for gradient accumulation
    _no_split_modules = ["HubertEncoderLayer", "HubertEncoderLayerStableLayerNorm"]


# Keys of MERT checkpoints that stock HubertModel names differently (weight norm of the positional convolution).
_MERT_KEY_RENAMES = {
    "encoder.pos_conv_embed.conv.weight_g": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv_embed.conv.weight_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
}
# Key prefixes of MERT features that a stock HubertModel does not implement: loading them would silently change the
# model, so they are an error.
_MERT_UNSUPPORTED_PREFIXES = {
    "feature_extractor_cqt.": "the CQT feature branch (`feature_extractor_cqt`)",
}
# HubertConfig fields that define the backbone's shape (and hence its state dict and forward pass).
_BACKBONE_SHAPE_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "feat_extract_norm",
    "conv_dim",
    "conv_stride",
    "conv_kernel",
    "conv_bias",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
    "do_stable_layer_norm",
    "feat_proj_layer_norm",
)


class GenreMERTForAudioClassification(GenreMERTPreTrainedModel):
    """
    GenreMERT: MERT (a stock `HubertModel`, frozen by default) → learned 1×1 aggregation of the hidden states named by
    `config.aggregation_layers` → time attention (respects `attention_mask`) → dropout → shared projection →
    classifier. With `config.counterfactual != "none"`, train mode also computes a counterfactual time attention whose
    pooled features go through their own dropout and the shared projection and classifier.
    """

    def __init__(self, config: GenreMERTConfig):
        super().__init__(config)
        self.backbone = HubertModel(config.backbone_config)
        self.layer_aggregation = GenreMERTLayerAggregation(config)
        self.time_attention = GenreMERTTimeAttention(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.head = GenreMERTClassificationHead(config)
        if config.counterfactual == "none":
            self.counterfactual_branch = None
            self.counterfactual_dropout = None
        else:
            attention = GenreMERTTimeAttention(config) if config.counterfactual == "learned" else None
            self.counterfactual_branch = LCACounterfactualBranch(config, attention)
            self.counterfactual_dropout = nn.Dropout(config.counterfactual_dropout)

        self.post_init()
        self._apply_backbone_freeze()

    # -- frozen backbone ---------------------------------------------------------------------------------------------

    def _apply_backbone_freeze(self) -> None:
        if self.config.freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True):
        """Like `nn.Module.train`, but a frozen backbone (`config.freeze_backbone`) stays in eval mode (no
        SpecAugment, dropout or layer drop) and without gradients, whatever the wrapper's mode."""
        super().train(mode)
        self._apply_backbone_freeze()
        return self

    @property
    def minimum_input_length(self) -> int:
        """Fewest samples that give one backbone frame (400 for MERT, 16.7 ms at 24 kHz)."""
        backbone_config = self.config.backbone_config
        length = 1
        layers = zip(backbone_config.conv_kernel, backbone_config.conv_stride, strict=True)
        for kernel, stride in reversed(list(layers)):
            length = (length - 1) * stride + kernel
        return length

    # -- forward -----------------------------------------------------------------------------------------------------

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        return_counterfactual: bool | None = None,
        **kwargs,
    ) -> tuple | LCAClassifierOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, samples)`):
            Mono waveform at `config.sampling_rate` (24 kHz), normalised by [`build_feature_extractor`]. Any length of
            at least `model.minimum_input_length` samples.
        attention_mask (`torch.LongTensor` of shape `(batch_size, samples)`, *optional*):
            1 for real samples, 0 for padding. Padded frames get zero attention.
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class ids; when given, `loss` is the cross-entropy of `logits`.
        return_counterfactual (`bool`, *optional*):
            Compute the counterfactual branch (`counterfactual_logits`, `counterfactual_attention`). Default: in train
            mode only. `True` also computes it in eval mode (dropout off), `False` never; no effect without a branch.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        _check_waveform(input_values, attention_mask, self.minimum_input_length, self.config.sampling_rate)
        input_values = input_values.to(self.dtype)  # e.g. float32 audio into a bfloat16 model
        if attention_mask is not None:
            attention_mask = attention_mask.long()

        backbone_outputs = self.backbone(
            input_values, attention_mask=attention_mask, output_hidden_states=True, return_dict=True
        )
        all_hidden_states = list(backbone_outputs.hidden_states)  # embeddings + every layer, (batch, frames, hidden)
        if self.config.backbone_config.do_stable_layer_norm:
            # Pre-LN encoders (MERT-v1-330M): transformers 5.x records the last layer before the encoder's final
            # LayerNorm; MERT (and transformers 4.x) gave it after, which is what `last_hidden_state` holds.
            all_hidden_states[-1] = backbone_outputs.last_hidden_state
        hidden_states = torch.stack(
            [all_hidden_states[layer] for layer in self.config.aggregation_layers], dim=1
        )  # (batch, layers, frames, hidden)
        hidden_states = self.layer_aggregation(hidden_states)  # (batch, frames, hidden)

        frame_mask = None
        if attention_mask is not None:
            frame_mask = self.backbone._get_feature_vector_attention_mask(hidden_states.shape[1], attention_mask)

        attention = self.time_attention(hidden_states, frame_mask)  # (batch, frames)
        pooled = torch.bmm(attention.unsqueeze(1), hidden_states)[:, 0]  # (batch, hidden)
        representation, logits = self.head(self.dropout(pooled))

        counterfactual_logits = counterfactual_attention = None
        if self._use_counterfactual_branch(return_counterfactual):
            counterfactual_attention = self.counterfactual_branch(
                attention, hidden_states, frame_mask, mask=frame_mask
            )  # (batch, frames)
            counterfactual_pooled = torch.bmm(counterfactual_attention.unsqueeze(1), hidden_states)[:, 0]
            _, counterfactual_logits = self.head(self.counterfactual_dropout(counterfactual_pooled))

        return self._classifier_output(
            labels,
            return_dict,
            logits=logits,
            counterfactual_logits=counterfactual_logits,
            attention=attention,
            counterfactual_attention=counterfactual_attention,
            representation=representation,
        )

    # -- MERT weights ------------------------------------------------------------------------------------------------

    def load_mert_weights(
        self,
        name_or_path: str | os.PathLike,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
    ):
        """Loads a MERT checkpoint in MERT's own format into the backbone, strictly.

        `name_or_path` is a local folder or a Hub id (e.g. `"m-a-p/MERT-v1-95M"`) holding `config.json`
        (`model_type` `"mert_model"` or `"hubert"`) and `model.safetensors` (preferred) or `pytorch_model.bin` (read
        with `torch.load(weights_only=True)`). Keys are unprefixed HuBERT keys; MERT's `weight_g`/`weight_v` of the
        positional convolution are mapped to the weight-norm parametrization of the stock `HubertModel`.

        Raises `ValueError` when the checkpoint's config does not match `config.backbone_config` (naming the field),
        when it uses a MERT feature a stock HubertModel lacks, or when keys are missing, unexpected or of the wrong
        shape (naming them). Returns the model.
        """
        folder = _resolve_checkpoint_folder(name_or_path, revision, token, cache_dir, local_files_only)
        config_file = os.path.join(folder, "config.json")
        if not os.path.isfile(config_file):
            raise ValueError(f"MERT checkpoint {name_or_path!r}: no config.json in {folder}.")
        with open(config_file, encoding="utf-8") as handle:
            checkpoint_config = json.load(handle)
        self._check_mert_config(checkpoint_config, config_file)

        state_dict = _read_state_dict(folder, name_or_path)
        state_dict = self._map_mert_state_dict(state_dict, name_or_path)
        self.backbone.load_state_dict(state_dict, strict=True)
        self._apply_backbone_freeze()
        return self

    def _check_mert_config(self, checkpoint_config: dict, config_file: str) -> None:
        model_type = checkpoint_config.get("model_type")
        if model_type not in ("mert_model", "hubert"):
            raise ValueError(f"{config_file}: `model_type` must be 'mert_model' or 'hubert', got {model_type!r}.")
        if checkpoint_config.get("feature_extractor_cqt", False):
            raise ValueError(
                f"{config_file}: `feature_extractor_cqt` is true; the CQT branch of MERT is not part of a stock "
                "HubertModel and cannot be loaded (the published MERT-v1 checkpoints do not use it)."
            )
        if checkpoint_config.get("deepnorm", False):
            raise ValueError(
                f"{config_file}: `deepnorm` is true; MERT's DeepNorm layers are not part of a stock HubertModel."
            )
        defaults = HubertConfig()
        expected = self.config.backbone_config
        for field in _BACKBONE_SHAPE_FIELDS:
            value = checkpoint_config.get(field, getattr(defaults, field))
            wanted = getattr(expected, field)
            if isinstance(value, tuple):
                value = list(value)
            if isinstance(wanted, tuple):
                wanted = list(wanted)
            if value != wanted:
                raise ValueError(
                    f"{config_file}: `{field}` is {value!r} but `config.backbone_config.{field}` is {wanted!r}; build "
                    "the model with a backbone_config matching the checkpoint."
                )

    def _map_mert_state_dict(self, state_dict: dict, name_or_path) -> dict:
        expected = self.backbone.state_dict()
        mapped = {}
        for key, tensor in state_dict.items():
            for prefix, what in _MERT_UNSUPPORTED_PREFIXES.items():
                if key.startswith(prefix):
                    raise ValueError(
                        f"MERT checkpoint {name_or_path!r} holds {key!r}: {what} is not part of a stock HubertModel."
                    )
            mapped[_MERT_KEY_RENAMES.get(key, key)] = tensor
        missing = sorted(set(expected) - set(mapped))
        unexpected = sorted(set(mapped) - set(expected))
        if missing or unexpected:
            inverse = {new: old for old, new in _MERT_KEY_RENAMES.items()}
            missing = [inverse.get(key, key) for key in missing]
            raise ValueError(
                f"MERT checkpoint {name_or_path!r} does not match the backbone: missing keys {missing}, unexpected "
                f"keys {unexpected}."
            )
        for key, tensor in mapped.items():
            if tuple(tensor.shape) != tuple(expected[key].shape):
                raise ValueError(
                    f"MERT checkpoint {name_or_path!r}: `{key}` has shape {tuple(tensor.shape)}, the backbone expects "
                    f"{tuple(expected[key].shape)}."
                )
        return mapped


def _resolve_checkpoint_folder(name_or_path, revision, token, cache_dir, local_files_only) -> str:
    """A local folder as is, otherwise the Hub snapshot of config.json and the weights (safetensors first)."""
    if os.path.isdir(name_or_path):
        return str(name_or_path)
    name = str(name_or_path)
    if name.startswith((".", "/", "~")) or name.count("/") != 1 or os.path.exists(name):
        raise ValueError(
            f"MERT checkpoint {name!r}: not a folder, and not a Hub id of the form 'owner/name' (e.g. "
            "'m-a-p/MERT-v1-95M')."
        )
    from huggingface_hub import hf_hub_download

    download = dict(revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only)
    try:
        config_path = hf_hub_download(name, "config.json", **download)
    except Exception as error:  # noqa: BLE001 - offline, missing repo, gated repo...: say which and why
        raise ValueError(
            f"MERT checkpoint {name!r}: could not fetch config.json from the Hub ({type(error).__name__}: {error})."
        ) from error
    errors = []
    for filename in ("model.safetensors", "pytorch_model.bin"):
        try:
            hf_hub_download(name, filename, **download)
            break
        except Exception as error:  # noqa: BLE001 - reported below if no weights file can be had
            errors.append(f"{filename}: {type(error).__name__}: {error}")
    else:
        raise ValueError(f"MERT checkpoint {name_or_path!r}: no weights file could be loaded ({'; '.join(errors)}).")
    return os.path.dirname(config_path)


def _read_state_dict(folder: str, name_or_path) -> dict:
    safetensors_file = os.path.join(folder, "model.safetensors")
    bin_file = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(safetensors_file):
        from safetensors.torch import load_file

        return load_file(safetensors_file)
    if os.path.isfile(bin_file):
        state_dict = torch.load(bin_file, map_location="cpu", weights_only=True)
        if not isinstance(state_dict, dict):
            raise ValueError(f"{bin_file}: expected a state dict, got {type(state_dict).__name__}.")
        return state_dict
    raise ValueError(f"MERT checkpoint {name_or_path!r}: neither model.safetensors nor pytorch_model.bin in {folder}.")


# ----------------------------------------------------------------------------------------------------------------------
# CRNN_FGNL
# ----------------------------------------------------------------------------------------------------------------------


class CRNNFGNLLogMel(nn.Module):
    """Log-mel front end on the model's device: STFT power (Hann window, centred, reflect padding) → slaney mel
    filters (librosa's and nnAudio's `MelSpectrogram` defaults) → dB as in the official code (`amplitude_to_db`
    applied to power: 20·log10, ref 1, amin 1e-5, `top_db` below each example's maximum).

    The window and filters are fixed, non-persistent buffers: not trained and not in the state dict."""

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__()
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.top_db = config.top_db
        window, mel_filters = self.compute_buffers(config)
        self.register_buffer("window", window, persistent=False)  # (n_fft,)
        self.register_buffer("mel_filters", mel_filters, persistent=False)  # (n_fft // 2 + 1, num_mel_bins)

    @staticmethod
    def compute_buffers(config: CRNNFGNLConfig) -> tuple[torch.Tensor, torch.Tensor]:
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


class CRNNFGNLConvBlock(nn.Module):
    """Conv 3×3 (same) → ELU → BatchNorm → [MaxPool 2×2] → Dropout."""

    def __init__(self, config: CRNNFGNLConfig, layer_id: int):
        super().__init__()
        in_channels = 1 if layer_id == 0 else config.conv_channels[layer_id - 1]
        out_channels = config.conv_channels[layer_id]
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.activation = nn.ELU()
        self.norm = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(2) if config.conv_pool[layer_id] else nn.Identity()
        self.dropout = nn.Dropout(config.conv_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # hidden_states: (batch, channels, mel, frames)
        hidden_states = self.norm(self.activation(self.conv(hidden_states)))
        return self.dropout(self.pool(hidden_states))


class CRNNFGNLGaussianBlur(nn.Module):
    """Fixed depthwise Gaussian filter (not trained) applied to θ, φ and g of the FGNL block."""

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__()
        self.channels = config.conv_channels[-1] // config.fgnl_reduction
        self.padding = config.gaussian_kernel_size // 2
        self.register_buffer("kernel", self.compute_kernel(config), persistent=False)  # (C', 1, k, k)

    @staticmethod
    def compute_kernel(config: CRNNFGNLConfig) -> torch.Tensor:
        offsets = torch.arange(config.gaussian_kernel_size, dtype=torch.float64, device="cpu")
        offsets = offsets - config.gaussian_kernel_size // 2
        kernel_1d = torch.exp(-(offsets**2) / (2 * config.gaussian_sigma**2))
        kernel_1d = kernel_1d / kernel_1d.sum()
        kernel_2d = torch.outer(kernel_1d, kernel_1d).float()  # (k, k)
        channels = config.conv_channels[-1] // config.fgnl_reduction
        return kernel_2d.expand(channels, 1, -1, -1).clone()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # hidden_states: (batch, C', mel, frames)
        return F.conv2d(hidden_states, self.kernel, padding=self.padding, groups=self.channels)


class CRNNFGNLNonLocal(nn.Module):
    """The fully generalized non-local operation (Kuo, Wei & Lin 2021) up to the rolls, before MoSE.

    Queries θ come from the last conv block, keys φ and values g from the last two (concatenated along positions).
    For each roll k the affinity is `θ · roll(φ, k, channels)ᵀ`, normalised by a softmax over the keys
    (`config.fgnl_softmax_axis="key"`, the standard non-local form) or over the queries (`"query"`, the official
    TensorFlow code), and `Y_k = f_k · g`. Returns the stacked rolls `(batch, N4, C', K)`.

    Why "key" is the default: with the query-axis softmax every key's weights sum to 1 over the queries, so the
    global average of `Y_k` is `mean_j g_j` for every k — the rolls are indistinguishable to MoSE, its roll attention
    is exactly uniform, and LCA's counterfactual MoSE cannot learn anything different from the main one."""

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__()
        last_channels, previous_channels = config.conv_channels[-1], config.conv_channels[-2]
        reduced = last_channels // config.fgnl_reduction
        self.num_rolls = config.num_rolls
        self.softmax_dim = 2 if config.fgnl_softmax_axis == "key" else 1  # of the (batch, N4, Nk) affinity
        self.theta = nn.Conv2d(last_channels, reduced, kernel_size=1)
        self.phi_last = nn.Conv2d(last_channels, reduced, kernel_size=1)
        self.g_last = nn.Conv2d(last_channels, reduced, kernel_size=1)
        self.phi_previous = nn.Conv2d(previous_channels, reduced, kernel_size=1)
        self.g_previous = nn.Conv2d(previous_channels, reduced, kernel_size=1)
        self.gaussian = CRNNFGNLGaussianBlur(config)

    def _embed(self, conv: nn.Conv2d, hidden_states: torch.Tensor) -> torch.Tensor:
        embedded = self.gaussian(conv(hidden_states))  # (batch, C', mel, frames)
        return embedded.flatten(2).transpose(1, 2)  # (batch, positions, C')

    def forward(self, last: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        # last: (batch, C4, F4, T4); previous: (batch, C3, F3, T3)
        theta = self._embed(self.theta, last)  # (batch, N4, C')
        phi = torch.cat([self._embed(self.phi_last, last), self._embed(self.phi_previous, previous)], dim=1)
        g = torch.cat([self._embed(self.g_last, last), self._embed(self.g_previous, previous)], dim=1)
        # phi, g: (batch, N4 + N3, C')
        rolls = []
        for shift in range(self.num_rolls):
            affinity = torch.bmm(theta, torch.roll(phi, shifts=shift, dims=2).transpose(1, 2))  # (batch, N4, Nk)
            affinity = affinity.softmax(dim=self.softmax_dim)  # over the keys (default) or the queries
            rolls.append(torch.bmm(affinity, g))  # (batch, N4, C')
        return torch.stack(rolls, dim=-1)  # (batch, N4, C', K)


class CRNNFGNLMoSE(nn.Module):
    """Mixture of softmaxes' attention over the K rolls: global average per roll → 1×1 conv 1→H → ReLU → 1×1 conv
    H→1 (shared over rolls) → softmax across rolls. This is the attention LCA counterfactualises."""

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__()
        self.hidden_conv = nn.Conv1d(1, config.mose_hidden_size, kernel_size=1)
        self.activation = nn.ReLU()
        self.score_conv = nn.Conv1d(config.mose_hidden_size, 1, kernel_size=1)

    def forward(self, rolls: torch.Tensor) -> torch.Tensor:
        # rolls: (batch, N4, C', K)
        pooled = rolls.mean(dim=(1, 2)).unsqueeze(1)  # (batch, 1, K)
        scores = self.score_conv(self.activation(self.hidden_conv(pooled)))[:, 0]  # (batch, K)
        return scores.softmax(dim=-1)  # (batch, K)


class CRNNFGNLOutput(nn.Module):
    """Scales each roll by its weight, concatenates the rolls along channels (K·C'), maps them back to the conv
    channels with a 1×1 conv and adds the result to the last conv block (residual)."""

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__()
        reduced = config.conv_channels[-1] // config.fgnl_reduction
        self.conv = nn.Conv2d(reduced * config.num_rolls, config.conv_channels[-1], kernel_size=1)

    def forward(self, rolls: torch.Tensor, roll_weights: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        # rolls: (batch, N4, C', K); roll_weights: (batch, K); last: (batch, C4, F4, T4)
        batch_size, _, mel, frames = last.shape
        scaled = rolls * roll_weights[:, None, None, :]  # (batch, N4, C', K)
        scaled = scaled.permute(0, 3, 2, 1).reshape(batch_size, -1, mel, frames)  # (batch, K·C', F4, T4)
        return last + self.conv(scaled)  # (batch, C4, F4, T4)


class CRNNFGNLRecurrentHead(nn.Module):
    """Time-major features → GRU → GRU → last valid state → dropout → classifier."""

    def __init__(self, config: CRNNFGNLConfig, num_mel_after_pooling: int):
        super().__init__()
        input_size = config.conv_channels[-1] * num_mel_after_pooling
        self.gru_1 = nn.GRU(input_size, config.gru_hidden_size, batch_first=True)
        self.gru_2 = nn.GRU(config.gru_hidden_size, config.gru_hidden_size, batch_first=True)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.gru_hidden_size, config.num_labels)

    def forward(self, hidden_states: torch.Tensor, frame_lengths: torch.Tensor | None):
        # hidden_states: (batch, C4, F4, T4)
        sequence = hidden_states.permute(0, 3, 1, 2).flatten(2)  # (batch, T4, C4·F4)
        sequence, _ = self.gru_1(sequence)  # (batch, T4, gru)
        sequence, _ = self.gru_2(sequence)  # (batch, T4, gru)
        if frame_lengths is None:
            representation = sequence[:, -1]  # (batch, gru)
        else:  # the GRUs are causal: the state at the last valid frame ignores the padding after it
            index = (frame_lengths - 1).clamp_min(0).to(sequence.device)
            representation = sequence[torch.arange(sequence.shape[0], device=sequence.device), index]
        return representation, self.classifier(self.dropout(representation))


class CRNNFGNLPreTrainedModel(LCAModelMixin, PreTrainedModel):
    config: CRNNFGNLConfig
    config_class = CRNNFGNLConfig
    base_model_prefix = "crnn_fgnl"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = False
    accepts_loss_kwargs = False  # `loss` is a batch mean: the Trainer scales it for gradient accumulation


class CRNNFGNLForAudioClassification(CRNNFGNLPreTrainedModel):
    """
    CRNN_FGNL (Kuo, Wei & Lin, AAAI 2021): raw waveform → log-mel → BatchNorm over mel bins → conv blocks → FGNL
    (non-local rolls mixed by the MoSE attention, residual to the last block) → GRU → GRU → classifier. With
    `config.counterfactual != "none"`, train mode also mixes the rolls with a counterfactual attention (a second MoSE
    or random weights) and runs the shared output conv, GRUs and classifier on that.
    """

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__(config)
        self.num_pools = sum(config.conv_pool)
        num_mel_after_pooling = config.num_mel_bins // 2**self.num_pools
        if num_mel_after_pooling < 1:
            raise ValueError(
                f"`num_mel_bins` ({config.num_mel_bins}) must survive {self.num_pools} 2×2 poolings "
                f"(at least {2**self.num_pools})."
            )
        self.log_mel = CRNNFGNLLogMel(config)
        self.input_norm = nn.BatchNorm1d(config.num_mel_bins)
        self.conv_blocks = nn.ModuleList(CRNNFGNLConvBlock(config, i) for i in range(len(config.conv_channels)))
        self.non_local = CRNNFGNLNonLocal(config)
        self.mose = CRNNFGNLMoSE(config)
        self.fgnl_output = CRNNFGNLOutput(config)
        self.head = CRNNFGNLRecurrentHead(config, num_mel_after_pooling)
        if config.counterfactual == "none":
            self.counterfactual_branch = None
        else:
            attention = CRNNFGNLMoSE(config) if config.counterfactual == "learned" else None
            self.counterfactual_branch = LCACounterfactualBranch(config, attention)

        self.post_init()

    @property
    def minimum_input_length(self) -> int:
        """Fewest samples whose frames survive the 2×2 poolings (and the STFT's reflect padding)."""
        minimum_frames = 2**self.num_pools
        return max((minimum_frames - 1) * self.config.hop_length, self.config.n_fft // 2 + 1)

    def compute_log_mel(self, input_values: torch.Tensor) -> torch.Tensor:
        """The dB log-mel `(batch, num_mel_bins, frames)` the model reads; pass it back as `input_features`."""
        _check_waveform(input_values, None, self.minimum_input_length, self.config.sampling_rate)
        return self.log_mel(input_values)

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        input_features: torch.Tensor | None = None,
        return_counterfactual: bool | None = None,
        **kwargs,
    ) -> tuple | LCAClassifierOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, samples)`):
            Raw mono waveform at `config.sampling_rate` (16 kHz), at least `model.minimum_input_length` samples.
        attention_mask (`torch.LongTensor` of shape `(batch_size, samples)`, *optional*):
            1 for real samples, 0 for padding: the prediction reads the GRU state at the last valid frame.
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class ids; when given, `loss` is the cross-entropy of `logits`.
        return_counterfactual (`bool`, *optional*):
            Compute the counterfactual branch (`counterfactual_logits`, `counterfactual_attention`). Default: in train
            mode only. `True` also computes it in eval mode (dropout off), `False` never; no effect without a branch.
        input_features (`torch.FloatTensor` of shape `(batch_size, num_mel_bins, frames)`, *optional*):
            The dB log-mel from `model.compute_log_mel`, instead of `input_values` (e.g. for Grad-CAM).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        frame_lengths = None
        if (input_values is None) == (input_features is None):
            raise ValueError("Pass exactly one of `input_values` (raw waveform) and `input_features` (log-mel).")
        if input_values is not None:
            _check_waveform(input_values, attention_mask, self.minimum_input_length, self.config.sampling_rate)
            log_mel = self.log_mel(input_values).to(self.dtype)  # (batch, mel, frames)
            if attention_mask is not None:
                frame_lengths = attention_mask.long().sum(-1) // self.config.hop_length + 1
                frame_lengths = frame_lengths // 2**self.num_pools
        else:
            log_mel = self._check_features(input_features).to(self.dtype)
            if attention_mask is not None:
                raise ValueError("`attention_mask` applies to `input_values`, not to `input_features`.")

        hidden_states = self.input_norm(log_mel).unsqueeze(1)  # (batch, 1, mel, frames)
        block_outputs = []
        for block in self.conv_blocks:
            hidden_states = block(hidden_states)
            block_outputs.append(hidden_states)
        previous, last = block_outputs[-2], block_outputs[-1]  # (batch, C3, F3, T3), (batch, C4, F4, T4)

        rolls = self.non_local(last, previous)  # (batch, N4, C', K)
        attention = self.mose(rolls)  # (batch, K)

        counterfactual_logits = counterfactual_attention = None
        if self._use_counterfactual_branch(return_counterfactual):
            counterfactual_attention = self.counterfactual_branch(attention, rolls)  # (batch, K)
            # Both attentions through the shared output conv, GRUs and classifier in one batch of 2 × batch: the GRUs
            # step through time once instead of twice.
            batch_size = last.shape[0]
            both_weights = torch.cat([attention, counterfactual_attention])  # (2·batch, K)
            both_fused = self.fgnl_output(rolls.repeat(2, 1, 1, 1), both_weights, last.repeat(2, 1, 1, 1))
            both_lengths = None if frame_lengths is None else frame_lengths.repeat(2)
            both_representations, both_logits = self.head(both_fused, both_lengths)
            representation, _ = both_representations.split(batch_size)
            logits, counterfactual_logits = both_logits.split(batch_size)
        else:
            representation, logits = self.head(self.fgnl_output(rolls, attention, last), frame_lengths)

        return self._classifier_output(
            labels,
            return_dict,
            logits=logits,
            counterfactual_logits=counterfactual_logits,
            attention=attention,
            counterfactual_attention=counterfactual_attention,
            representation=representation,
        )

    def _check_features(self, input_features) -> torch.Tensor:
        if not isinstance(input_features, torch.Tensor) or not torch.is_floating_point(input_features):
            raise ValueError("`input_features` must be a floating-point torch.Tensor (the dB log-mel).")
        expected = f"(batch, {self.config.num_mel_bins}, frames)"
        if input_features.dim() != 3 or input_features.shape[1] != self.config.num_mel_bins:
            raise ValueError(f"`input_features` must have shape {expected}, got {tuple(input_features.shape)}.")
        minimum_frames = 2**self.num_pools
        if input_features.shape[0] == 0 or input_features.shape[2] < minimum_frames:
            raise ValueError(
                f"`input_features` must have at least one example and {minimum_frames} frames, got shape "
                f"{tuple(input_features.shape)}."
            )
        return input_features


# ----------------------------------------------------------------------------------------------------------------------
# Registration (skipped inside a transformers dynamic module: the remote copy has no side effects)
# ----------------------------------------------------------------------------------------------------------------------

if not __name__.startswith("transformers_modules"):
    AutoConfig.register("genremert", GenreMERTConfig, exist_ok=True)
    AutoConfig.register("crnn_fgnl", CRNNFGNLConfig, exist_ok=True)
    AutoModelForAudioClassification.register(GenreMERTConfig, GenreMERTForAudioClassification, exist_ok=True)
    AutoModelForAudioClassification.register(CRNNFGNLConfig, CRNNFGNLForAudioClassification, exist_ok=True)
    GenreMERTConfig.register_for_auto_class()
    CRNNFGNLConfig.register_for_auto_class()
    GenreMERTForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
    CRNNFGNLForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")


__all__ = [
    "LCAClassifierOutput",
    "LCACounterfactualBranch",
    "GenreMERTPreTrainedModel",
    "GenreMERTForAudioClassification",
    "CRNNFGNLPreTrainedModel",
    "CRNNFGNLForAudioClassification",
    "build_feature_extractor",
]
