"""PyTorch CRNN_FGNL: a log-mel CRNN with the fully generalized non-local module, and an optional learnable
counterfactual attention branch (LCA).

[`CRNNFGNLForAudioClassification`] (Kuo, Wei & Lin, AAAI 2021): 16 kHz waveform → log-mel front end (inside the model)
→ four conv blocks → fully generalized non-local (FGNL) block whose channel rolls are mixed by a MoSE attention → two
GRUs → classifier. With LCA, train mode also mixes the rolls with a counterfactual attention (a second MoSE,
[`LCACounterfactualBranch`], shared with the other genremert models).

This file is remote code (copied next to the weights by `save_pretrained`, executed with `trust_remote_code=True`): it
imports only torch, numpy, transformers and its siblings, and has no side effects on import.
"""

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init


try:  # inside a remote-code folder (transformers copies siblings imported this way)
    from .configuration_genremert import CRNNFGNLConfig
    from .modeling_lca_genremert import (
        LCAClassifierOutput,
        LCAModelMixin,
        LCAModelOutput,
        LogMelSpectrogram,
        base_model_shortcut,
        check_log_mel_features,
        check_waveform,
    )
except ImportError:  # flat checkout: `import modeling_crnn_fgnl`
    from configuration_genremert import CRNNFGNLConfig
    from modeling_lca_genremert import (
        LCAClassifierOutput,
        LCAModelMixin,
        LCAModelOutput,
        LogMelSpectrogram,
        base_model_shortcut,
        check_log_mel_features,
        check_waveform,
    )


class CRNNFGNLConvBlock(nn.Module):
    """Conv 3×3 (same) → ELU → BatchNorm → [MaxPool 2×2] → Dropout.

    ELU and dropout work in place: at full resolution (the second block: batch 16 × 128 channels × 128 mels × 157
    frames at 5 s) every fresh tensor is 160 MB to allocate and page in, and neither op's input is needed by a backward
    pass (the conv saves its input, BatchNorm and the pool theirs; ELU's backward reads its own output). The same
    dropout mask is drawn as out of place."""

    def __init__(self, config: CRNNFGNLConfig, layer_id: int):
        super().__init__()
        in_channels = 1 if layer_id == 0 else config.conv_channels[layer_id - 1]
        out_channels = config.conv_channels[layer_id]
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.activation = nn.ELU(inplace=True)  # on the conv's fresh output
        self.norm = nn.BatchNorm2d(out_channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        self.pool = nn.MaxPool2d(2) if config.conv_pool[layer_id] else nn.Identity()
        self.dropout = nn.Dropout(config.conv_dropout, inplace=True)  # on the pool's (or BatchNorm's) fresh output

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
        kernel = self.kernel.to(hidden_states.dtype)  # a non-persistent buffer keeps float32 under dtype=bfloat16
        return F.conv2d(hidden_states, kernel, padding=self.padding, groups=self.channels)


class CRNNFGNLNonLocal(nn.Module):
    """The fully generalized non-local operation (Kuo, Wei & Lin 2021) up to the rolls, before MoSE.

    Queries θ come from the last conv block, keys φ and values g from the last two (concatenated along positions).
    For each roll k the affinity is `θ · roll(φ, k, channels)ᵀ`, normalised by a softmax over the keys
    (`config.fgnl_softmax_axis="key"`, the standard non-local form) or over the queries (`"query"`, the official
    TensorFlow code), and `Y_k = f_k · g`. Returns the stacked rolls `(batch, N4, C', K)`.

    Why "key" is the default: with the query-axis softmax every key's weights sum to 1 over the queries, so the
    global average of `Y_k` is `mean_j g_j` for every k — the rolls are indistinguishable to MoSE, its roll attention
    is exactly uniform, and LCA's counterfactual MoSE cannot learn anything different from the main one.

    How it is computed (the same sums, in a cheaper order): `θ_i · roll(φ_j, k) = roll(θ_i, −k) · φ_j`, so the K
    rolls are K rolled copies of the N4 queries against one set of keys: one attention of K·N4 queries over
    N4 + N3 keys with C' = 4 channels. With the key softmax that is exactly scaled-dot-product attention (scale 1),
    whose fused kernel never stores the (batch, K·N4, N4 + N3) affinity (≈ 30 M numbers at 5 s) nor runs the
    transposed batched matmuls with inner size 4 that dominated its backward. The query softmax normalises over the
    queries of each roll, which no attention kernel does: it keeps the explicit affinity, one batched matmul for all
    rolls."""

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__()
        last_channels, previous_channels = config.conv_channels[-1], config.conv_channels[-2]
        reduced = last_channels // config.fgnl_reduction
        self.num_rolls = config.num_rolls
        self.softmax_over_keys = config.fgnl_softmax_axis == "key"
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
        # phi, g: (batch, Nk, C') with Nk = N4 + N3, contiguous (cat copies)
        batch_size, num_queries, reduced = theta.shape
        # Roll k of the keys' channels by +k is roll k of the queries' channels by −k.
        queries = torch.stack([torch.roll(theta, shifts=-shift, dims=2) for shift in range(self.num_rolls)], dim=1)
        # queries: (batch, K, N4, C')
        if self.softmax_over_keys:
            rolls = F.scaled_dot_product_attention(
                queries.reshape(batch_size, 1, self.num_rolls * num_queries, reduced),  # one head of K·N4 queries
                phi.unsqueeze(1),  # (batch, 1, Nk, C')
                g.unsqueeze(1),  # (batch, 1, Nk, C')
                scale=1.0,  # the FGNL affinity is the plain dot product
            )  # (batch, 1, K·N4, C')
            rolls = rolls.view(batch_size, self.num_rolls, num_queries, reduced)  # (batch, K, N4, C')
        else:
            affinity = torch.matmul(queries, phi.transpose(1, 2).unsqueeze(1))  # (batch, K, N4, Nk)
            affinity = affinity.float().softmax(dim=2).to(affinity.dtype)  # over the queries of each roll
            rolls = torch.matmul(affinity, g.unsqueeze(1))  # (batch, K, N4, C')
        return rolls.permute(0, 2, 3, 1)  # (batch, N4, C', K), a view


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
        return scores.float().softmax(dim=-1).to(scores.dtype)  # (batch, K); in float32 under bf16/fp16


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


class CRNNFGNLRecurrentEncoder(nn.Module):
    """Time-major features → GRU → GRU: the GRU frames, and the state at the last valid frame (the embedding)."""

    def __init__(self, config: CRNNFGNLConfig, num_mel_after_pooling: int):
        super().__init__()
        input_size = config.conv_channels[-1] * num_mel_after_pooling
        self.gru_1 = nn.GRU(input_size, config.gru_hidden_size, batch_first=True)
        self.gru_2 = nn.GRU(config.gru_hidden_size, config.gru_hidden_size, batch_first=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # hidden_states: (batch, C4, F4, T4)
        sequence = hidden_states.permute(0, 3, 1, 2).flatten(2)  # (batch, T4, C4·F4)
        sequence, _ = self.gru_1(sequence)  # (batch, T4, gru)
        sequence, _ = self.gru_2(sequence)  # (batch, T4, gru)
        return sequence

    @staticmethod
    def last_state(sequence: torch.Tensor, frame_lengths: torch.Tensor | None) -> torch.Tensor:
        """`(batch, gru)`: the state at the last frame, or at the last valid one (the GRUs are causal: it ignores the
        padding after it)."""
        if frame_lengths is None:
            return sequence[:, -1]
        index = (frame_lengths - 1).clamp_min(0).to(sequence.device)
        return sequence[torch.arange(sequence.shape[0], device=sequence.device), index]


class CRNNFGNLClassificationHead(nn.Module):
    """The embedding → dropout → classifier."""

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.gru_hidden_size, config.num_labels)

    def forward(self, representation: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(representation))  # (batch, num_labels)


class CRNNFGNLTimeAttention(nn.Module):
    """Attention pooling over the GRU frames (`config.counterfactual_attention = "time"`): each frame's GRU state →
    linear → tanh → linear → one score → softmax over the valid frames. Its weights decide which moments the
    classifier reads, so a counterfactual one (LCA) changes the prediction directly."""

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__()
        self.hidden = nn.Linear(config.gru_hidden_size, config.time_attention_hidden_size)
        self.activation = nn.Tanh()
        self.score = nn.Linear(config.time_attention_hidden_size, 1)

    def forward(self, sequence: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        # sequence: (batch, T4, gru); frame_mask: (batch, T4) bool
        scores = self.score(self.activation(self.hidden(sequence)))[..., 0]  # (batch, T4)
        if frame_mask is not None:
            scores = scores.masked_fill(~frame_mask, torch.finfo(scores.dtype).min)
        return scores.float().softmax(dim=-1).to(scores.dtype)  # (batch, T4); in float32 under bf16/fp16


class CRNNFGNLPreTrainedModel(LCAModelMixin, PreTrainedModel):
    config: CRNNFGNLConfig
    config_class = CRNNFGNLConfig
    base_model_prefix = "crnn_fgnl"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = False
    accepts_loss_kwargs = False  # `loss` is a batch mean: the Trainer scales it for gradient accumulation
    _auto_class = "AutoModelForAudioClassification"  # save_pretrained writes auto_map and copies the code files

    def _init_model_weights(self, module) -> None:
        """The fixed buffers (mel filters, STFT window, Gaussian kernel), recomputed from the config; with
        `initialization="keras"`, the official Keras model's initialisers instead of PyTorch's."""
        if self.config.initialization == "keras":
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                init.xavier_uniform_(module.weight)  # Keras' glorot_uniform (same fans for dense and conv kernels)
                if module.bias is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, nn.GRU):
                for name, parameter in module.named_parameters():
                    if name.startswith("weight_ih"):
                        init.xavier_uniform_(parameter)
                    elif name.startswith("weight_hh"):
                        init.orthogonal_(parameter)
                    else:
                        init.zeros_(parameter)
        if isinstance(module, LogMelSpectrogram):
            window, mel_filters = module.compute_buffers(self.config)
            init.copy_(module.window, window)
            init.copy_(module.mel_filters, mel_filters)
        elif isinstance(module, CRNNFGNLGaussianBlur):
            init.copy_(module.kernel, module.compute_kernel(self.config))


class CRNNFGNLModel(CRNNFGNLPreTrainedModel):
    """
    The CRNN_FGNL base model (Kuo, Wei & Lin, AAAI 2021): raw waveform → log-mel → BatchNorm over mel bins → conv
    blocks → FGNL (non-local rolls mixed by the MoSE attention, residual to the last block) → GRU → GRU → the state at
    the last valid frame (`pooler_output`; with `counterfactual_attention="time"`, the time-attention pooling of the GRU
    frames): the embedding [`CRNNFGNLForAudioClassification`] classifies.
    """

    _auto_class = "AutoModel"
    _auto_map_classes = {
        "AutoModel": "CRNNFGNLModel",
        "AutoModelForAudioClassification": "CRNNFGNLForAudioClassification",
    }
    # a classifier's folder loads into the base model: its head and counterfactual branch are expected leftovers
    _keys_to_ignore_on_load_unexpected = [r"^head\.", r"^counterfactual_branch\."]

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__(config)
        self.num_pools = sum(config.conv_pool)
        num_mel_after_pooling = config.num_mel_bins // 2**self.num_pools
        if num_mel_after_pooling < 1:
            raise ValueError(
                f"`num_mel_bins` ({config.num_mel_bins}) must survive {self.num_pools} 2×2 poolings "
                f"(at least {2**self.num_pools})."
            )
        self.log_mel = LogMelSpectrogram(config)
        self.input_norm = nn.BatchNorm1d(
            config.num_mel_bins, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum
        )
        self.conv_blocks = nn.ModuleList(CRNNFGNLConvBlock(config, i) for i in range(len(config.conv_channels)))
        self.non_local = CRNNFGNLNonLocal(config)
        self.mose = CRNNFGNLMoSE(config)
        self.fgnl_output = CRNNFGNLOutput(config)
        self.recurrent = CRNNFGNLRecurrentEncoder(config, num_mel_after_pooling)
        self.time_attention = CRNNFGNLTimeAttention(config) if config.counterfactual_attention == "time" else None

        self.post_init()

    @property
    def minimum_input_length(self) -> int:
        """Fewest samples whose frames survive the 2×2 poolings (and the STFT's reflect padding)."""
        minimum_frames = 2**self.num_pools
        return max((minimum_frames - 1) * self.config.hop_length, self.config.n_fft // 2 + 1)

    def compute_log_mel(self, input_values: torch.Tensor) -> torch.Tensor:
        """The dB log-mel `(batch, num_mel_bins, frames)` the model reads; pass it back as `input_features`."""
        check_waveform(input_values, None, self.minimum_input_length, self.config.sampling_rate)
        return self.log_mel(input_values)

    def freeze_feature_encoder(self) -> None:
        """Freeze the convolutional front end (input BatchNorm and conv blocks), as Transformers' audio example scripts
        do before fine-tuning: no gradients, and its BatchNorms keep their running statistics (the front end stays in
        eval mode whatever the model's mode), so its output no longer drifts."""
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

    # -- the stages of the forward pass (the classifier runs them too, to batch its counterfactual branch) ----------

    def front_end(self, input_values, attention_mask, input_features) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """`(block outputs [(batch, 1, mel, frames), (batch, C, mel', frames'), ...], valid frames after the poolings
        (batch,) or None)`: log-mel → BatchNorm → conv blocks."""
        frame_lengths = None
        if (input_values is None) == (input_features is None):
            raise ValueError("Pass exactly one of `input_values` (raw waveform) and `input_features` (log-mel).")
        if input_values is not None:
            check_waveform(input_values, attention_mask, self.minimum_input_length, self.config.sampling_rate)
            log_mel = self.log_mel(input_values).to(self.dtype)  # (batch, mel, frames)
            if attention_mask is not None:
                frame_lengths = attention_mask.long().sum(-1) // self.config.hop_length + 1
                frame_lengths = frame_lengths // 2**self.num_pools
        else:
            log_mel = check_log_mel_features(input_features, self.config.num_mel_bins, 2**self.num_pools).to(self.dtype)
            if attention_mask is not None:
                raise ValueError("`attention_mask` applies to `input_values`, not to `input_features`.")

        hidden_states = self.input_norm(log_mel).unsqueeze(1)  # (batch, 1, mel, frames)
        block_outputs = [hidden_states]
        for block in self.conv_blocks:
            hidden_states = block(hidden_states)
            block_outputs.append(hidden_states)
        return block_outputs, frame_lengths

    @staticmethod
    def frame_mask(frame_lengths: torch.Tensor | None, sequence: torch.Tensor) -> torch.Tensor | None:
        """`(batch, T4)` bool, `True` on the GRU frames of real audio; `None` without lengths."""
        if frame_lengths is None:
            return None
        frames = torch.arange(sequence.shape[1], device=sequence.device)
        return frames[None, :] < frame_lengths.clamp_min(1).to(sequence.device)[:, None]  # (batch, T4)

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | LCAModelOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, samples)`):
            Raw mono waveform at `config.sampling_rate` (16 kHz), at least `model.minimum_input_length` samples.
        attention_mask (`torch.LongTensor` of shape `(batch_size, samples)`, *optional*):
            1 for real samples, 0 for padding: the embedding is the GRU state at the last valid frame.
        input_features (`torch.FloatTensor` of shape `(batch_size, num_mel_bins, frames)`, *optional*):
            The dB log-mel from `model.compute_log_mel`, instead of `input_values` (e.g. for Grad-CAM).
        output_hidden_states (`bool`, *optional*, defaults to `config.output_hidden_states`):
            Also return `hidden_states`: the normalised log-mel `(batch, 1, mel, frames)` and every conv block's
            output `(batch, channels, mel', frames')`.
        output_attentions (`bool`, *optional*, defaults to `config.output_attentions`):
            Also return `attentions`: the MoSE roll weights `(batch, num_rolls)` (and, with
            `counterfactual_attention="time"`, the time attention `(batch, frames)`).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        block_outputs, frame_lengths = self.front_end(input_values, attention_mask, input_features)
        previous, last = block_outputs[-2], block_outputs[-1]  # (batch, C3, F3, T3), (batch, C4, F4, T4)
        rolls = self.non_local(last, previous)  # (batch, N4, C', K)
        roll_attention = self.mose(rolls)  # (batch, K)
        sequence = self.recurrent(self.fgnl_output(rolls, roll_attention, last))  # (batch, T4, gru)
        if self.time_attention is not None:
            attention = self.time_attention(sequence, self.frame_mask(frame_lengths, sequence))  # (batch, T4)
            pooled = torch.bmm(attention.unsqueeze(1), sequence)[:, 0]  # (batch, gru)
        else:
            attention = roll_attention
            pooled = self.recurrent.last_state(sequence, frame_lengths)  # (batch, gru)
        attentions = (roll_attention,) if roll_attention is attention else (roll_attention, attention)
        output = LCAModelOutput(
            last_hidden_state=sequence,
            pooler_output=pooled,
            attention=attention,
            hidden_states=tuple(block_outputs) if output_hidden_states else None,
            attentions=attentions if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


class CRNNFGNLForAudioClassification(CRNNFGNLPreTrainedModel):
    """
    CRNN_FGNL: the base model [`CRNNFGNLModel`] (log-mel → conv blocks → FGNL → GRU → GRU → the last state) → dropout →
    classifier. With `config.counterfactual != "none"`, train mode also computes a counterfactual attention and the
    prediction it gives:

    - `config.counterfactual_attention = "mose"` (the paper's): a second MoSE mixes the rolls, and the shared output
      conv, GRUs and classifier run on that. Measured: this attention barely moves the prediction (4 roll weights from
      4 global means, mixed into a residual the GRUs learn to ignore; docs/evidence.md).
    - `"time"` (ours): the main path pools the GRU frames with a time attention instead of reading the last state, and
      the counterfactual branch is a second time attention over the same frames: an attention with real capacity.
    """

    _auto_map_classes = CRNNFGNLModel._auto_map_classes
    # the legacy flat layout: the base model's modules at the top level, the GRUs and the classifier in one `head`
    _legacy_key_mapping = {
        r"^(log_mel|input_norm|conv_blocks|non_local|mose|fgnl_output|time_attention)\.": r"crnn_fgnl.\1.",
        r"^head\.(gru_1|gru_2)\.": r"crnn_fgnl.recurrent.\1.",
    }

    def inert_counterfactual_reason(self) -> str | None:
        """With the query-axis affinity softmax every FGNL roll has the same global average, so both MoSE roll
        attentions are exactly uniform and no gradient reaches them: LCA's attention terms are inert."""
        config = self.config
        if config.counterfactual == "learned" and config.counterfactual_attention == "mose":
            if config.fgnl_softmax_axis == "query":
                return (
                    "fgnl_softmax_axis='query' makes every FGNL roll's global average equal, so the MoSE roll attentions "
                    "are exactly uniform and receive zero gradient: LCA's attention terms (ce_cf, ent_cf, att) are inert "
                    "and an LCA run is the plain model plus noise. Use fgnl_softmax_axis='key' or "
                    "counterfactual_attention='time'."
                )
        return None

    def __init__(self, config: CRNNFGNLConfig):
        super().__init__(config)
        self.crnn_fgnl = CRNNFGNLModel(config)
        self.head = CRNNFGNLClassificationHead(config)
        attention_class = CRNNFGNLTimeAttention if config.counterfactual_attention == "time" else CRNNFGNLMoSE
        self.counterfactual_branch = self._build_counterfactual_branch(config, lambda: attention_class(config))

        self.post_init()

    # the base model's parts and methods, as shortcuts
    log_mel = base_model_shortcut("log_mel")
    input_norm = base_model_shortcut("input_norm")
    conv_blocks = base_model_shortcut("conv_blocks")
    non_local = base_model_shortcut("non_local")
    mose = base_model_shortcut("mose")
    fgnl_output = base_model_shortcut("fgnl_output")
    recurrent = base_model_shortcut("recurrent")
    time_attention = base_model_shortcut("time_attention")
    num_pools = base_model_shortcut("num_pools")
    minimum_input_length = base_model_shortcut("minimum_input_length")
    compute_log_mel = base_model_shortcut("compute_log_mel")
    freeze_feature_encoder = base_model_shortcut("freeze_feature_encoder")

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        input_features: torch.Tensor | None = None,
        return_counterfactual: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> tuple | LCAClassifierOutput:
        r"""
        input_values, attention_mask, input_features, output_hidden_states, output_attentions:
            As in [`CRNNFGNLModel.forward`].
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class ids; when given, `loss` is the cross-entropy of `logits`. With
            `config.problem_type = "multi_label_classification"`: float multi-hot targets `(batch_size, num_labels)`,
            and `loss` is the binary cross-entropy of every tag.
        return_counterfactual (`bool`, *optional*):
            Compute the counterfactual branch (`counterfactual_logits`, `counterfactual_attention`). Default: in train
            mode only. `True` also computes it in eval mode (dropout off), `False` never; no effect without a branch.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        base = self.crnn_fgnl
        use_branch = self._use_counterfactual_branch(return_counterfactual)
        counterfactual_logits = counterfactual_attention = None
        if not (use_branch and base.time_attention is None):
            outputs = base(
                input_values,
                attention_mask=attention_mask,
                input_features=input_features,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
                return_dict=True,
            )
            attention, representation = outputs.attention, outputs.pooler_output
            logits = self.head(representation)
            if use_branch:  # the time attention's counterfactual: a second time attention over the same GRU frames
                sequence = outputs.last_hidden_state  # (batch, T4, gru)
                frame_mask = None
                if attention_mask is not None:
                    frame_lengths = attention_mask.long().sum(-1) // self.config.hop_length + 1
                    frame_mask = base.frame_mask(frame_lengths // 2**base.num_pools, sequence)
                counterfactual_attention = self.counterfactual_branch(attention, sequence, frame_mask, mask=frame_mask)
                counterfactual_pooled = torch.bmm(counterfactual_attention.unsqueeze(1), sequence)[:, 0]
                counterfactual_logits = self.head(counterfactual_pooled)
            hidden_states, attentions = outputs.hidden_states, outputs.attentions
        else:
            # The paper's MoSE counterfactual: both roll attentions through the shared output conv, GRUs and classifier
            # in one batch of 2 × batch (the GRUs step through time once instead of twice).
            output_hidden_states = (
                self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
            )
            output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
            block_outputs, frame_lengths = base.front_end(input_values, attention_mask, input_features)
            previous, last = block_outputs[-2], block_outputs[-1]  # (batch, C3, F3, T3), (batch, C4, F4, T4)
            rolls = base.non_local(last, previous)  # (batch, N4, C', K)
            attention = base.mose(rolls)  # (batch, K)
            counterfactual_attention = self.counterfactual_branch(attention, rolls)  # (batch, K)
            batch_size = last.shape[0]
            both_weights = torch.cat([attention, counterfactual_attention])  # (2·batch, K)
            both_fused = base.fgnl_output(rolls.repeat(2, 1, 1, 1), both_weights, last.repeat(2, 1, 1, 1))
            both_lengths = None if frame_lengths is None else frame_lengths.repeat(2)
            both_representations = base.recurrent.last_state(base.recurrent(both_fused), both_lengths)
            both_logits = self.head(both_representations)
            representation, _ = both_representations.split(batch_size)
            logits, counterfactual_logits = both_logits.split(batch_size)
            hidden_states = tuple(block_outputs) if output_hidden_states else None
            attentions = (attention,) if output_attentions else None

        return self._classifier_output(
            labels,
            return_dict,
            logits=logits,
            counterfactual_logits=counterfactual_logits,
            attention=attention,
            counterfactual_attention=counterfactual_attention,
            representation=representation,
            hidden_states=hidden_states,
            attentions=attentions,
        )

    def regularization_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """The official Keras model's penalties on its classifier: `classifier_kernel_l2 · Σ W²` on the kernel and
        `classifier_activity_l1 · mean_batch Σ |logits|` (Keras divides activity penalties by the batch size)."""
        penalty = logits.new_zeros(())
        if self.config.classifier_kernel_l2:
            penalty = penalty + self.config.classifier_kernel_l2 * self.head.classifier.weight.square().sum()
        if self.config.classifier_activity_l1:
            penalty = penalty + self.config.classifier_activity_l1 * logits.abs().sum(-1).mean()
        return penalty

    @torch.no_grad()
    def logits_with_attention(self, input_values: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """The logits the model gives when `attention` replaces its main attention (the one LCA counterfactualises:
        MoSE roll weights `(batch, num_rolls)` or time weights `(batch, frames)`), in eval mode. Measures how much the
        prediction depends on that attention."""
        was_training = self.training
        self.eval()
        base = self.crnn_fgnl
        try:
            block_outputs, _ = base.front_end(input_values, None, None)
            previous, last = block_outputs[-2], block_outputs[-1]
            rolls = base.non_local(last, previous)
            if base.time_attention is None:
                sequence = base.recurrent(base.fgnl_output(rolls, attention.to(rolls.dtype), last))
                return self.head(base.recurrent.last_state(sequence, None))
            sequence = base.recurrent(base.fgnl_output(rolls, base.mose(rolls), last))
            return self.head(torch.bmm(attention.to(sequence.dtype).unsqueeze(1), sequence)[:, 0])
        finally:
            self.train(was_training)


__all__ = ["CRNNFGNLPreTrainedModel", "CRNNFGNLModel", "CRNNFGNLForAudioClassification"]
