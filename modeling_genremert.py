"""PyTorch GenreMERT: a frozen MERT backbone with learned layer aggregation, time attention and an optional learnable
counterfactual attention branch (LCA).

[`GenreMERTForAudioClassification`]: 24 kHz waveform → frozen MERT backbone (a stock `HubertModel`) → learned 1×1
aggregation of its hidden layers → time attention → shared projection → classifier. With LCA, train mode also computes a
second, counterfactual time attention ([`LCACounterfactualBranch`], shared with the other genremert models).

Loading MERT's own checkpoints into the backbone is a helper of the library (`genremert.mert_weights`), not of this
file. This file is remote code (copied next to the weights by `save_pretrained`, executed with
`trust_remote_code=True`): it imports only torch, transformers and its siblings, and has no side effects on import.
"""

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import logging


try:  # inside a remote-code folder (transformers copies siblings imported this way)
    from .configuration_genremert import BACKBONE_INPUTS, GenreMERTConfig
    from .modeling_lca_genremert import (
        LCAClassifierOutput,
        LCAModelMixin,
        LCAModelOutput,
        base_model_shortcut,
        check_waveform,
    )
except ImportError:  # flat checkout: `import modeling_genremert`
    from configuration_genremert import BACKBONE_INPUTS, GenreMERTConfig
    from modeling_lca_genremert import (
        LCAClassifierOutput,
        LCAModelMixin,
        LCAModelOutput,
        base_model_shortcut,
        check_waveform,
    )


logger = logging.get_logger(__name__)


class GenreMERTLayerAggregation(nn.Module):
    """Learned 1×1 convolution over the chosen hidden states: a weighted sum of layers plus a bias."""

    def __init__(self, config: GenreMERTConfig):
        super().__init__()
        self.conv = nn.Conv2d(len(config.aggregation_layers), 1, kernel_size=1)
        # `_init_weights` starts it as the plain mean of the layers. (The rule is keyed on the conv itself: Transformers
        # skips the init hook of a remote-code module that has no parameters of its own, such as this one.)
        self.conv.starts_as_layer_mean = True

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # hidden_states: (batch, layers, frames, hidden)
        return self.conv(hidden_states)[:, 0]  # (batch, frames, hidden)


class GenreMERTTimeAttention(nn.Module):
    """Time attention of the reference genreMERT: mean over the features of each frame → 1×1 conv 1→16 → tanh →
    1×1 conv 16→1 → softmax over time. Padded frames (`frame_mask == False`) get weight 0. With
    `config.time_attention_input="features"` the first 1×1 conv reads the whole frame (hidden → 16) instead of its mean."""

    def __init__(self, config: GenreMERTConfig):
        super().__init__()
        self.reads_features = getattr(config, "time_attention_input", "mean") == "features"
        in_channels = config.hidden_size if self.reads_features else 1
        self.hidden_conv = nn.Conv1d(in_channels, config.attention_hidden_size, kernel_size=1)
        self.activation = nn.Tanh()
        self.score_conv = nn.Conv1d(config.attention_hidden_size, 1, kernel_size=1)

    def forward(self, hidden_states: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        # hidden_states: (batch, frames, hidden); frame_mask: (batch, frames) bool
        if self.reads_features:
            scores = hidden_states.transpose(1, 2)  # (batch, hidden, frames)
        else:
            scores = hidden_states.mean(dim=-1).unsqueeze(1)  # (batch, 1, frames)
        scores = self.score_conv(self.activation(self.hidden_conv(scores)))[:, 0]  # (batch, frames)
        if frame_mask is not None:
            scores = scores.masked_fill(~frame_mask, torch.finfo(scores.dtype).min)
        return scores.float().softmax(dim=-1).to(scores.dtype)  # (batch, frames); in float32 under bf16/fp16


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
    supports_gradient_checkpointing = True  # through the backbone's encoder layers (for full fine-tuning)
    # The attention backends are the backbone's: `attn_implementation` reaches it (`config.backbone_config` is a sub-config).
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    accepts_loss_kwargs = False  # `loss` is a batch mean: the Trainer scales it for gradient accumulation
    _no_split_modules = ["HubertEncoderLayer", "HubertEncoderLayerStableLayerNorm"]
    _auto_class = "AutoModelForAudioClassification"  # save_pretrained writes auto_map and copies the code files

    def _init_model_weights(self, module) -> None:
        if getattr(module, "starts_as_layer_mean", False):  # GenreMERTLayerAggregation's conv
            # Start as the plain mean of the chosen layers (as HubertForSequenceClassification's layer weights).
            init.constant_(module.weight, 1.0 / module.in_channels)
            init.zeros_(module.bias)


class GenreMERTModel(GenreMERTPreTrainedModel):
    """
    The GenreMERT base model: MERT (a stock `HubertModel`, frozen by default) → learned 1×1 aggregation of the hidden
    states named by `config.aggregation_layers` → time attention (respects `attention_mask`) → the attention-pooled
    embedding (`pooler_output`). What [`GenreMERTForAudioClassification`] classifies, for retrieval, probing or t-SNE.
    """

    _auto_class = "AutoModel"
    # a classifier's folder loads into the base model: its head and counterfactual branch are expected leftovers
    _keys_to_ignore_on_load_unexpected = [r"^head\.", r"^counterfactual_branch\."]
    _auto_map_classes = {
        "AutoModel": "GenreMERTModel",
        "AutoModelForAudioClassification": "GenreMERTForAudioClassification",
    }

    def __init__(self, config: GenreMERTConfig):
        super().__init__(config)
        # a stock HubertModel for MERT, on the attention backend this model was asked for (`attn_implementation`);
        # a backbone without that backend (WavLM has no SDPA) runs eager attention, with a warning
        try:
            backbone = AutoModel.from_config(config.backbone_config, attn_implementation=config._attn_implementation)
        except ValueError as error:
            logger.warning(f"backbone {config.backbone_config.model_type}: {error} Using eager attention.")
            backbone = AutoModel.from_config(config.backbone_config, attn_implementation="eager")
        if getattr(config.backbone_config, "is_encoder_decoder", False):
            backbone = backbone.get_encoder()  # Whisper: its encoder
        self.backbone = backbone
        self.layer_aggregation = GenreMERTLayerAggregation(config)
        self.time_attention = GenreMERTTimeAttention(config)

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
    def reads_waveform(self) -> bool:
        """True when the backbone reads the raw waveform (HuBERT/MERT, wav2vec2, WavLM, ...), False when it reads the
        spectrogram features of its own feature extractor (AST, Whisper)."""
        return BACKBONE_INPUTS[self.config.backbone_config.model_type] == "waveform"

    @property
    def minimum_input_length(self) -> int:
        """Fewest samples that give one backbone frame (400 for MERT, 16.7 ms at 24 kHz); spectrogram backbones pad
        their features to a fixed length, so any 25 ms is enough."""
        backbone_config = self.config.backbone_config
        if not self.reads_waveform:
            return int(0.025 * self.config.sampling_rate)
        length = 1
        layers = zip(backbone_config.conv_kernel, backbone_config.conv_stride, strict=True)
        for kernel, stride in reversed(list(layers)):
            length = (length - 1) * stride + kernel
        return length

    def freeze_feature_encoder(self) -> None:
        """Freeze the backbone's convolutional feature encoder (what Transformers' audio example scripts call before
        fine-tuning); the whole backbone stays frozen anyway with `config.freeze_backbone`."""
        feature_encoder = getattr(self.backbone, "feature_extractor", None)
        if feature_encoder is None:
            raise NotImplementedError(
                f"the {self.config.backbone_config.model_type} backbone has no convolutional feature encoder to freeze."
            )
        feature_encoder.requires_grad_(False)
        if hasattr(feature_encoder, "_requires_grad"):
            feature_encoder._requires_grad = False

    # -- forward -----------------------------------------------------------------------------------------------------

    def backbone_hidden_states(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The backbone's hidden states that the layer aggregation reads, `(batch, layers, frames, hidden)`
        (`config.aggregation_layers`, in order). What a backbone feature cache stores for a frozen backbone.
        `input_values` is the waveform `(batch, samples)`, or for a spectrogram backbone the features of its feature
        extractor (AST: `(batch, frames, mel)`; Whisper: `input_features (batch, mel, frames)`)."""
        return self._run_backbone(input_values, attention_mask)[0]

    def _run_backbone(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, tuple, tuple | None]:
        """`(stacked aggregation layers (batch, layers, frames, hidden), every hidden state, attentions or None)`."""
        if self.reads_waveform:
            check_waveform(input_values, attention_mask, self.minimum_input_length, self.config.sampling_rate)
            if attention_mask is not None:
                attention_mask = attention_mask.long()
            backbone_inputs = {"input_values": input_values.to(self.dtype), "attention_mask": attention_mask}
        else:
            if not isinstance(input_values, torch.Tensor) or input_values.dim() != 3:
                raise ValueError(
                    f"the {self.config.backbone_config.model_type} backbone reads the 3-D features of its feature "
                    f"extractor (build_feature_extractor(config)), got {type(input_values).__name__} of shape "
                    f"{tuple(getattr(input_values, 'shape', ()))}."
                )
            key = "input_features" if self.config.backbone_config.model_type == "whisper" else "input_values"
            backbone_inputs = {key: input_values.to(self.dtype)}
        backbone_outputs = self.backbone(
            **backbone_inputs, output_hidden_states=True, output_attentions=output_attentions, return_dict=True
        )
        all_hidden_states = list(backbone_outputs.hidden_states)  # embeddings + every layer, (batch, frames, hidden)
        if getattr(self.config.backbone_config, "do_stable_layer_norm", False):
            # Pre-LN encoders (MERT-v1-330M): transformers 5.x records the last layer before the encoder's final
            # LayerNorm; MERT (and transformers 4.x) gave it after, which is what `last_hidden_state` holds.
            all_hidden_states[-1] = backbone_outputs.last_hidden_state
        stacked = torch.stack([all_hidden_states[layer] for layer in self.config.aggregation_layers], dim=1)
        return stacked, tuple(all_hidden_states), backbone_outputs.attentions if output_attentions else None

    def frame_mask(self, num_frames: int, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """`(batch, frames)` bool, `True` on the frames of real samples; `None` when every frame is real (no mask, or
        a spectrogram backbone, whose features carry no padding mask)."""
        if attention_mask is None or not self.reads_waveform:
            return None
        return self.backbone._get_feature_vector_attention_mask(num_frames, attention_mask.long())

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        backbone_hidden_states: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | LCAModelOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, samples)`):
            Mono waveform at `config.sampling_rate` (24 kHz), normalised by [`build_feature_extractor`]. Any length of
            at least `model.minimum_input_length` samples.
        attention_mask (`torch.LongTensor` of shape `(batch_size, samples)`, *optional*):
            1 for real samples, 0 for padding. Padded frames get zero attention.
        backbone_hidden_states (`torch.FloatTensor` of shape `(batch_size, layers, frames, hidden)`, *optional*):
            What `model.backbone_hidden_states(input_values)` returns (e.g. from a feature cache of the frozen
            backbone), instead of `input_values`; unpadded slices only.
        output_hidden_states (`bool`, *optional*, defaults to `config.output_hidden_states`):
            Also return `hidden_states`: the backbone's (embeddings and every layer, `(batch, frames, hidden)` each), as
            `HubertModel` does; with `backbone_hidden_states` given, the layers given.
        output_attentions (`bool`, *optional*, defaults to `config.output_attentions`):
            Also return `attentions`: the backbone's attention maps (needs the eager attention backend).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        all_hidden_states = backbone_attentions = None
        if input_features is not None:  # Whisper's feature extractor names its output so
            if input_values is not None:
                raise ValueError("Pass one of `input_values` and `input_features`.")
            input_values = input_features
        if (input_values is None) == (backbone_hidden_states is None):
            raise ValueError("Pass exactly one of `input_values` and `backbone_hidden_states`.")
        if backbone_hidden_states is None:
            hidden_states, all_hidden_states, backbone_attentions = self._run_backbone(
                input_values, attention_mask, output_attentions
            )
        else:
            expected = (len(self.config.aggregation_layers), self.config.hidden_size)
            if (
                backbone_hidden_states.dim() != 4
                or (backbone_hidden_states.shape[1], backbone_hidden_states.shape[3]) != expected
            ):
                raise ValueError(
                    f"`backbone_hidden_states` must have shape (batch, {expected[0]}, frames, {expected[1]}), got "
                    f"{tuple(backbone_hidden_states.shape)}."
                )
            if attention_mask is not None:
                raise ValueError("`backbone_hidden_states` are of unpadded slices: no `attention_mask` with them.")
            hidden_states = backbone_hidden_states.to(self.dtype)
            all_hidden_states = tuple(hidden_states.unbind(dim=1))
        hidden_states = self.layer_aggregation(hidden_states)  # (batch, frames, hidden)
        frame_mask = self.frame_mask(hidden_states.shape[1], attention_mask)  # (batch, frames) or None

        attention = self.time_attention(hidden_states, frame_mask)  # (batch, frames)
        pooled = torch.bmm(attention.unsqueeze(1), hidden_states)[:, 0]  # (batch, hidden)
        output = LCAModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=pooled,
            attention=attention,
            hidden_states=all_hidden_states if output_hidden_states else None,
            attentions=backbone_attentions if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


class GenreMERTForAudioClassification(GenreMERTPreTrainedModel):
    """
    GenreMERT: the base model [`GenreMERTModel`] (frozen MERT → learned layer aggregation → time attention → pooled
    frames) → dropout → shared projection → classifier. With `config.counterfactual != "none"`, train mode also computes
    a counterfactual time attention whose pooled features go through their own dropout and the shared projection and
    classifier.
    """

    _auto_map_classes = GenreMERTModel._auto_map_classes
    _legacy_base_modules = ("backbone", "layer_aggregation", "time_attention")

    def __init__(self, config: GenreMERTConfig):
        super().__init__(config)
        self.genremert = GenreMERTModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.head = GenreMERTClassificationHead(config)
        self.counterfactual_branch = self._build_counterfactual_branch(config, lambda: GenreMERTTimeAttention(config))
        self.counterfactual_dropout = (
            None if config.counterfactual == "none" else nn.Dropout(config.counterfactual_dropout)
        )

        self.post_init()

    # the base model's parts and methods, as shortcuts
    backbone = base_model_shortcut("backbone")
    layer_aggregation = base_model_shortcut("layer_aggregation")
    time_attention = base_model_shortcut("time_attention")
    reads_waveform = base_model_shortcut("reads_waveform")
    minimum_input_length = base_model_shortcut("minimum_input_length")
    freeze_feature_encoder = base_model_shortcut("freeze_feature_encoder")
    backbone_hidden_states = base_model_shortcut("backbone_hidden_states")

    # -- forward -----------------------------------------------------------------------------------------------------

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        return_counterfactual: bool | None = None,
        backbone_hidden_states: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> tuple | LCAClassifierOutput:
        r"""
        input_values, attention_mask, backbone_hidden_states, output_hidden_states, output_attentions:
            As in [`GenreMERTModel.forward`].
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class ids; when given, `loss` is the cross-entropy of `logits`. With
            `config.problem_type = "multi_label_classification"`: float multi-hot targets `(batch_size, num_labels)`,
            and `loss` is the binary cross-entropy of every tag.
        return_counterfactual (`bool`, *optional*):
            Compute the counterfactual branch (`counterfactual_logits`, `counterfactual_attention`). Default: in train
            mode only. `True` also computes it in eval mode (dropout off), `False` never; no effect without a branch.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        base = self.genremert(
            input_values,
            attention_mask=attention_mask,
            backbone_hidden_states=backbone_hidden_states,
            input_features=input_features,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        hidden_states, attention = base.last_hidden_state, base.attention  # (batch, frames, hidden), (batch, frames)
        representation, logits = self.head(self.dropout(base.pooler_output))

        counterfactual_logits = counterfactual_attention = None
        if self._use_counterfactual_branch(return_counterfactual):
            frame_mask = self.genremert.frame_mask(hidden_states.shape[1], attention_mask)
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
            hidden_states=base.hidden_states,
            attentions=base.attentions,
        )


__all__ = ["GenreMERTPreTrainedModel", "GenreMERTModel", "GenreMERTForAudioClassification"]
