"""PyTorch self-attention music tagger (Won, Chun & Serra, 2019), with an optional learnable counterfactual attention
branch (LCA).

[`SelfAttentionTaggerForAudioClassification`]: 16 kHz waveform → log-mel front end (inside the model) → residual conv
blocks whose strides pool the frequency axis away → one token per time step, a classification token in front, learned
positions → BERT-style Transformer layers → the classification token's output → classifier (sigmoid tags by default).

The attention LCA counterfactualises is the classification token's attention in the *last* layer: the classifier reads
only that token, and its last-layer output is exactly a mix of the tokens' values weighted by that attention, so it
decides which moments of the slice the tags are read from (as GenreMERT's time attention does). Only the
classification token's row of the last layer is computed: this is the full layer for everything the classifier sees.
With LCA, train mode also computes a second, learned attention of the same design ([`LCACounterfactualBranch`], shared
with the other genremert models) and runs the classification token's output and the classifier on it.

This file is remote code (copied next to the weights by `save_pretrained`, executed with `trust_remote_code=True`): it
imports only torch, transformers and its siblings, and has no side effects on import.
"""

import math

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer


try:  # inside a remote-code folder (transformers copies siblings imported this way)
    from .configuration_genremert import SelfAttentionTaggerConfig
    from .modeling_lca_genremert import (
        LCAClassifierOutput,
        LCAModelMixin,
        LCAModelOutput,
        LogMelSpectrogram,
        base_model_shortcut,
        check_log_mel_features,
        check_waveform,
    )
except ImportError:  # flat checkout: `import modeling_self_attention_tagger`
    from configuration_genremert import SelfAttentionTaggerConfig
    from modeling_lca_genremert import (
        LCAClassifierOutput,
        LCAModelMixin,
        LCAModelOutput,
        LogMelSpectrogram,
        base_model_shortcut,
        check_log_mel_features,
        check_waveform,
    )


class SelfAttentionTaggerResidualBlock(nn.Module):
    """Won et al.'s `Res_2d`: conv 3×3 (stride) → BN → ReLU → conv 3×3 → BN, plus a strided conv 3×3 → BN shortcut when
    the stride or the channels change; ReLU of the sum."""

    def __init__(self, config: SelfAttentionTaggerConfig, layer_id: int):
        super().__init__()
        in_channels = 1 if layer_id == 0 else config.conv_channels[layer_id - 1]
        out_channels = config.conv_channels[layer_id]
        stride = tuple(config.conv_strides[layer_id])  # (frequency, time)
        self.conv_1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        self.norm_1 = nn.BatchNorm2d(out_channels)
        self.conv_2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.norm_2 = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU()
        self.shortcut = None
        if stride != (1, 1) or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # hidden_states: (batch, channels, mel, frames)
        output = self.norm_2(self.conv_2(self.activation(self.norm_1(self.conv_1(hidden_states)))))
        shortcut = hidden_states if self.shortcut is None else self.shortcut(hidden_states)
        return self.activation(output + shortcut)  # (batch, out_channels, mel / s_f, frames / s_t)


class SelfAttentionTaggerSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention (BERT's), returning its weights for the heat maps."""

    def __init__(self, config: SelfAttentionTaggerConfig):
        super().__init__()
        self.config = config  # read at call time: `config._attn_implementation` may change after construction
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        batch_size, length, _ = states.shape
        return states.view(batch_size, length, self.num_heads, self.head_size).transpose(1, 2)  # (batch, heads, L, d)

    def forward(
        self, hidden_states: torch.Tensor, key_mask: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # hidden_states: (batch, tokens, hidden); key_mask: (batch, tokens) bool, True = a real token
        query, key, value = (self._heads(layer(hidden_states)) for layer in (self.query, self.key, self.value))
        if self.config._attn_implementation == "sdpa" and not output_attentions:
            # PyTorch's fused kernel: the same softmax(QKᵀ/√d)V, without materialising the weights.
            mask = None if key_mask is None else key_mask[:, None, None, :]  # (batch, 1, 1, T) bool
            context = nn.functional.scaled_dot_product_attention(
                query, key, value, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0
            )  # (batch, heads, T, d)
            return context.transpose(1, 2).flatten(2), None
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size)  # (batch, heads, T, T)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = scores.float().softmax(dim=-1).to(scores.dtype)  # (batch, heads, T, T)
        context = torch.matmul(self.dropout(weights), value)  # (batch, heads, T, d)
        context = context.transpose(1, 2).flatten(2)  # (batch, T, hidden)
        return context, weights


class SelfAttentionTaggerClassAttention(nn.Module):
    """The classification token's attention over every token (itself included) in the last layer: its query against
    every key, softmax per head. This is the attention LCA counterfactualises; a learned counterfactual branch holds
    a second module of this design."""

    def __init__(self, config: SelfAttentionTaggerConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        # hidden_states: (batch, tokens, hidden), token 0 = the classification token; key_mask: (batch, tokens) bool
        batch_size, length, _ = hidden_states.shape
        query = self.query(hidden_states[:, :1]).view(batch_size, self.num_heads, 1, self.head_size)
        key = self.key(hidden_states).view(batch_size, length, self.num_heads, self.head_size).transpose(1, 2)
        scores = torch.matmul(query, key.transpose(-1, -2))[:, :, 0] / math.sqrt(self.head_size)  # (batch, heads, T)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, :], torch.finfo(scores.dtype).min)
        return scores.float().softmax(dim=-1).to(scores.dtype)  # (batch, heads, tokens)


class SelfAttentionTaggerFeedForward(nn.Module):
    """BERT's attention output (dense → dropout → residual LayerNorm) and feed-forward (dense → act → dense → dropout →
    residual LayerNorm), shared by the full layers and the last layer's classification-token row."""

    def __init__(self, config: SelfAttentionTaggerConfig):
        super().__init__()
        self.attention_output = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        # context, residual: (batch, tokens, hidden)
        hidden_states = self.attention_norm(residual + self.dropout(self.attention_output(context)))
        intermediate = self.activation(self.intermediate(hidden_states))
        return self.output_norm(hidden_states + self.dropout(self.output(intermediate)))


class SelfAttentionTaggerLayer(GradientCheckpointingLayer):
    """One BERT layer (post-LayerNorm) over every token (recomputed in the backward pass under gradient
    checkpointing)."""

    def __init__(self, config: SelfAttentionTaggerConfig):
        super().__init__()
        self.attention = SelfAttentionTaggerSelfAttention(config)
        self.feed_forward = SelfAttentionTaggerFeedForward(config)

    def forward(self, hidden_states: torch.Tensor, key_mask: torch.Tensor | None, output_attentions: bool = False):
        context, weights = self.attention(hidden_states, key_mask, output_attentions)
        return self.feed_forward(context, hidden_states), weights  # (batch, T, hidden), (batch, heads, T, T) or None


class SelfAttentionTaggerClassTokenLayer(nn.Module):
    """The last BERT layer, computed for the classification token only (all the classifier reads): its attention
    over the tokens ([`SelfAttentionTaggerClassAttention`]), the values, then the layer's output and feed-forward.
    `class_token_output` takes the attention as an argument so that the counterfactual one goes through the same
    values and weights."""

    def __init__(self, config: SelfAttentionTaggerConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.class_attention = SelfAttentionTaggerClassAttention(config)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.feed_forward = SelfAttentionTaggerFeedForward(config)

    def class_token_output(self, hidden_states: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        # hidden_states: (batch, tokens, hidden); attention: (batch, heads, tokens)
        batch_size, length, _ = hidden_states.shape
        value = self.value(hidden_states).view(batch_size, length, self.num_heads, self.head_size).transpose(1, 2)
        context = torch.matmul(self.dropout(attention).unsqueeze(2).to(value.dtype), value)  # (batch, heads, 1, d)
        context = context.transpose(1, 2).flatten(2)  # (batch, 1, hidden)
        return self.feed_forward(context, hidden_states[:, :1])[:, 0]  # (batch, hidden)


class SelfAttentionTaggerPreTrainedModel(LCAModelMixin, PreTrainedModel):
    config: SelfAttentionTaggerConfig
    config_class = SelfAttentionTaggerConfig
    base_model_prefix = "self_attention_tagger"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = True  # the full Transformer layers
    _supports_sdpa = True  # the full layers' attention; eager where `output_attentions` asks for the maps
    accepts_loss_kwargs = False  # `loss` is a batch mean: the Trainer scales it for gradient accumulation
    _auto_class = "AutoModelForAudioClassification"  # save_pretrained writes auto_map and copies the code files

    def _init_model_weights(self, module) -> None:
        """BERT's rules for the Transformer (normal(0, initializer_range) weights, zero biases, unit LayerNorms, normal
        classification token and positions); the fixed log-mel buffers recomputed from the config."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SelfAttentionTaggerEmbeddings):
            init.normal_(module.class_token, mean=0.0, std=std)
            init.normal_(module.position_embeddings.weight, mean=0.0, std=std)
        elif isinstance(module, LogMelSpectrogram):
            window, mel_filters = module.compute_buffers(self.config)
            init.copy_(module.window, window)
            init.copy_(module.mel_filters, mel_filters)


class SelfAttentionTaggerEmbeddings(nn.Module):
    """Front-end features `(batch, frames, hidden)` → `[CLS] + frames`, plus learned positions, LayerNorm, dropout."""

    def __init__(self, config: SelfAttentionTaggerConfig):
        super().__init__()
        self.class_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch_size, num_frames, _ = frames.shape
        maximum = self.position_embeddings.num_embeddings
        if num_frames + 1 > maximum:
            raise ValueError(
                f"the slice gives {num_frames} time steps after the front end, more than the "
                f"{maximum - 1} that `max_position_embeddings` ({maximum}, the classification token included) allows: "
                "use shorter slices or a model with a larger `max_position_embeddings`."
            )
        tokens = torch.cat([self.class_token.expand(batch_size, -1, -1).to(frames.dtype), frames], dim=1)
        positions = torch.arange(num_frames + 1, device=frames.device)
        return self.dropout(
            self.norm(tokens + self.position_embeddings(positions)[None])
        )  # (batch, 1 + frames, hidden)


class SelfAttentionTaggerModel(SelfAttentionTaggerPreTrainedModel):
    """
    The self-attention tagger's base model (Won, Chun & Serra 2019): raw waveform → log-mel → BatchNorm → residual conv
    blocks (frequency pooled away) → `[CLS]` + one token per time step + positions → Transformer layers → the
    classification token's output (`pooler_output`), the embedding [`SelfAttentionTaggerForAudioClassification`]
    classifies.
    """

    _auto_class = "AutoModel"
    _auto_map_classes = {
        "AutoModel": "SelfAttentionTaggerModel",
        "AutoModelForAudioClassification": "SelfAttentionTaggerForAudioClassification",
    }
    # a classifier's folder loads into the base model: its classifier and counterfactual branch are expected leftovers
    _keys_to_ignore_on_load_unexpected = [r"^classifier\.", r"^counterfactual_branch\."]

    def __init__(self, config: SelfAttentionTaggerConfig):
        super().__init__(config)
        self.log_mel = LogMelSpectrogram(config)
        self.input_norm = nn.BatchNorm2d(1)
        self.conv_blocks = nn.ModuleList(
            SelfAttentionTaggerResidualBlock(config, i) for i in range(len(config.conv_channels))
        )
        self.mel_after_front_end = config.num_mel_bins
        for stride, _ in config.conv_strides:
            self.mel_after_front_end = (self.mel_after_front_end - 1) // stride + 1  # 3×3 conv, padding 1
        last_channels = config.conv_channels[-1]
        self.projection = (
            nn.Identity() if last_channels == config.hidden_size else nn.Linear(last_channels, config.hidden_size)
        )
        self.embeddings = SelfAttentionTaggerEmbeddings(config)
        self.layers = nn.ModuleList(SelfAttentionTaggerLayer(config) for _ in range(config.num_hidden_layers - 1))
        self.last_layer = SelfAttentionTaggerClassTokenLayer(config)

        self.post_init()

    @property
    def minimum_input_length(self) -> int:
        """Fewest samples the STFT's reflect padding accepts (every strided conv keeps at least one step)."""
        return self.config.n_fft // 2 + 1

    def freeze_feature_encoder(self) -> None:
        """Freeze the convolutional front end (input BatchNorm and residual conv blocks), as Transformers' audio
        example scripts do before fine-tuning: no gradients, and its BatchNorms keep their running statistics (the
        front end stays in eval mode whatever the model's mode), so its output no longer drifts."""
        self.input_norm.requires_grad_(False)
        self.conv_blocks.requires_grad_(False)
        self.feature_encoder_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True):
        """`nn.Module.train`, but a frozen front end (`freeze_feature_encoder`) stays in eval mode."""
        super().train(mode)
        if getattr(self, "feature_encoder_frozen", False):
            self.input_norm.eval()
            self.conv_blocks.eval()
        return self

    def compute_log_mel(self, input_values: torch.Tensor) -> torch.Tensor:
        """The dB log-mel `(batch, num_mel_bins, frames)` the model reads; pass it back as `input_features`."""
        check_waveform(input_values, None, self.minimum_input_length, self.config.sampling_rate)
        return self.log_mel(input_values)

    def token_lengths(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Time steps after the front end that hold real audio, per example `(batch,)`."""
        lengths = attention_mask.long().sum(-1) // self.config.hop_length + 1  # log-mel frames (centred STFT)
        for _, stride in self.config.conv_strides:
            lengths = (lengths - 1) // stride + 1
        return lengths

    def token_mask(self, num_tokens: int, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """`(batch, tokens)` bool, `True` on the classification token and the time steps of real audio; `None`
        without an `attention_mask`."""
        if attention_mask is None:
            return None
        positions = torch.arange(num_tokens, device=attention_mask.device)
        lengths = self.token_lengths(attention_mask).clamp_min(1)
        return positions[None, :] <= lengths[:, None]  # CLS + real steps

    def encode(self, log_mel: torch.Tensor, key_mask: torch.Tensor | None = None, output_attentions: bool = True):
        """The tokens entering the last layer `(batch, 1 + steps, hidden)`, the earlier layers' attention maps
        `[(batch, heads, T, T)]` (None each without `output_attentions` under SDPA) and their inputs / outputs
        `[(batch, T, hidden)]` (the embeddings, then every full layer). `key_mask`: see `token_mask`."""
        hidden_states = self.input_norm(log_mel.unsqueeze(1))  # (batch, 1, mel, frames)
        for block in self.conv_blocks:
            hidden_states = block(hidden_states)  # (batch, C, mel', frames')
        frames = hidden_states.amax(dim=2).transpose(1, 2)  # frequency pooled away: (batch, steps, C)
        tokens = self.embeddings(self.projection(frames))  # (batch, 1 + steps, hidden)
        if key_mask is not None:
            key_mask = key_mask.to(tokens.device)
        attention_maps, layer_states = [], [tokens]
        for layer in self.layers:
            tokens, weights = layer(tokens, key_mask, output_attentions)
            attention_maps.append(weights)
            layer_states.append(tokens)
        return tokens, attention_maps, layer_states

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | LCAModelOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, samples)`):
            Raw mono waveform at `config.sampling_rate` (16 kHz), at least `model.minimum_input_length` samples.
        attention_mask (`torch.LongTensor` of shape `(batch_size, samples)`, *optional*):
            1 for real samples, 0 for padding: padded time steps are masked out of every attention.
        input_features (`torch.FloatTensor` of shape `(batch_size, num_mel_bins, frames)`, *optional*):
            The dB log-mel from `model.compute_log_mel`, instead of `input_values`.
        output_hidden_states (`bool`, *optional*, defaults to `config.output_hidden_states`):
            Also return `hidden_states`: the token embeddings and every full layer's output `(batch, tokens, hidden)`,
            then the last layer's output for the classification token, the only row it computes, `(batch, 1, hidden)`.
        output_attentions (`bool`, *optional*, defaults to `config.output_attentions`):
            Also return `attentions`: every layer's maps `(batch, heads, tokens, tokens)`, the last one the
            classification token's row `(batch, heads, 1, tokens)` (token 0 is the classification token).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        if (input_values is None) == (input_features is None):
            raise ValueError("Pass exactly one of `input_values` (raw waveform) and `input_features` (log-mel).")
        if input_values is not None:
            check_waveform(input_values, attention_mask, self.minimum_input_length, self.config.sampling_rate)
            log_mel = self.log_mel(input_values).to(self.dtype)  # (batch, mel, frames)
        else:
            if attention_mask is not None:
                raise ValueError("`attention_mask` applies to `input_values`, not to `input_features`.")
            log_mel = check_log_mel_features(input_features, self.config.num_mel_bins).to(self.dtype)

        key_mask = self.token_mask(self.num_tokens(log_mel.shape[-1]), attention_mask)  # (batch, tokens) or None
        tokens, attention_maps, layer_states = self.encode(log_mel, key_mask, output_attentions)
        attention = self.last_layer.class_attention(tokens, key_mask)  # (batch, heads, tokens)
        pooled = self.last_layer.class_token_output(tokens, attention)  # (batch, hidden)
        output = LCAModelOutput(
            last_hidden_state=tokens,
            pooler_output=pooled,
            attention=attention,
            hidden_states=(*layer_states, pooled.unsqueeze(1)) if output_hidden_states else None,
            attentions=(*attention_maps, attention.unsqueeze(2)) if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()

    def num_tokens(self, num_log_mel_frames: int) -> int:
        """Tokens of a log-mel of `num_log_mel_frames` frames: the classification token + the front end's steps."""
        steps = num_log_mel_frames
        for _, stride in self.config.conv_strides:
            steps = (steps - 1) // stride + 1
        return 1 + steps


class SelfAttentionTaggerForAudioClassification(SelfAttentionTaggerPreTrainedModel):
    """
    The self-attention tagger: the base model [`SelfAttentionTaggerModel`] (log-mel → conv front end → Transformer
    layers → the classification token's output) → dropout → classifier. `config.problem_type` is
    `"multi_label_classification"` by default (sigmoid per tag, BCE).

    With `config.counterfactual != "none"`, train mode also computes a counterfactual attention of the classification
    token in the last layer (learned: a second [`SelfAttentionTaggerClassAttention`]; random: CAL's) and the
    classifier's answer on it. `output_attentions=True` returns every layer's attention maps for the heat maps.
    """

    _auto_map_classes = SelfAttentionTaggerModel._auto_map_classes
    _legacy_base_modules = ("log_mel", "input_norm", "conv_blocks", "projection", "embeddings", "layers", "last_layer")

    def __init__(self, config: SelfAttentionTaggerConfig):
        super().__init__(config)
        self.self_attention_tagger = SelfAttentionTaggerModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.counterfactual_branch = self._build_counterfactual_branch(
            config, lambda: SelfAttentionTaggerClassAttention(config)
        )

        self.post_init()

    # the base model's parts and methods, as shortcuts
    log_mel = base_model_shortcut("log_mel")
    input_norm = base_model_shortcut("input_norm")
    conv_blocks = base_model_shortcut("conv_blocks")
    embeddings = base_model_shortcut("embeddings")
    layers = base_model_shortcut("layers")
    last_layer = base_model_shortcut("last_layer")
    minimum_input_length = base_model_shortcut("minimum_input_length")
    freeze_feature_encoder = base_model_shortcut("freeze_feature_encoder")
    compute_log_mel = base_model_shortcut("compute_log_mel")
    token_lengths = base_model_shortcut("token_lengths")
    encode = base_model_shortcut("encode")
    mel_after_front_end = base_model_shortcut("mel_after_front_end")
    projection = base_model_shortcut("projection")

    def output_classifier(self) -> nn.Linear:
        """The last linear layer (representation → labels): what a transfer to another label set re-initialises."""
        return self.classifier

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        input_features: torch.Tensor | None = None,
        return_counterfactual: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> tuple | LCAClassifierOutput:
        r"""
        input_values, attention_mask, input_features, output_attentions, output_hidden_states:
            As in [`SelfAttentionTaggerModel.forward`].
        labels (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            Multi-hot tag targets (the default `problem_type`): `loss` is the binary cross-entropy of every tag; with
            `problem_type="single_label_classification"`, class ids `(batch_size,)` and the cross-entropy.
        return_counterfactual (`bool`, *optional*):
            Compute the counterfactual branch. Default: in train mode only; `True` also in eval mode, `False` never.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        base = self.self_attention_tagger(
            input_values,
            attention_mask=attention_mask,
            input_features=input_features,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        tokens, attention, representation = base.last_hidden_state, base.attention, base.pooler_output
        logits = self.classifier(self.dropout(representation))  # (batch, num_labels)

        counterfactual_logits = counterfactual_attention = None
        if self._use_counterfactual_branch(return_counterfactual):
            key_mask = self.self_attention_tagger.token_mask(tokens.shape[1], attention_mask)  # (batch, tokens)
            mask = None if key_mask is None else key_mask[:, None, :]  # broadcast over the heads
            counterfactual_attention = self.counterfactual_branch(attention, tokens, key_mask, mask=mask)
            counterfactual_representation = self.last_layer.class_token_output(tokens, counterfactual_attention)
            counterfactual_logits = self.classifier(self.dropout(counterfactual_representation))

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

    @torch.no_grad()
    def logits_with_attention(self, input_values: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """The logits the model gives when `attention` `(batch, heads, tokens)` replaces the classification token's
        last-layer attention (the one LCA counterfactualises), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            check_waveform(input_values, None, self.minimum_input_length, self.config.sampling_rate)
            tokens = self.self_attention_tagger.encode(
                self.log_mel(input_values).to(self.dtype), output_attentions=False
            )[0]
            return self.classifier(self.last_layer.class_token_output(tokens, attention.to(tokens.dtype)))
        finally:
            self.train(was_training)


__all__ = [
    "SelfAttentionTaggerPreTrainedModel",
    "SelfAttentionTaggerModel",
    "SelfAttentionTaggerForAudioClassification",
]
