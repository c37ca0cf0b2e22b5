"""Song-level audio-classification pipeline of the genremert models.

`pipeline("audio-classification", model=folder, trust_remote_code=True)` loads
[`SongLevelAudioClassificationPipeline`] from a saved model folder (the configs carry `custom_pipelines`). It differs
from the stock [`~transformers.AudioClassificationPipeline`] in three ways:

- A recording longer than one training slice (`config.slice_seconds`) is cut into slices of exactly that length; the
  model classifies every slice and the song-level answer combines them (`config.song_aggregation`: the mean of the
  slice probabilities, or the fraction of slices that vote for each label). The model never sees a length it was not
  trained on, except for recordings shorter than one slice, which get one pass over their whole length.
- It needs neither torchaudio nor torchcodec: dict inputs at another sampling rate are resampled with
  `scipy.signal.resample_poly`; files are decoded with soundfile when it is installed (wav, flac, ogg, mp3) and with
  the `ffmpeg` binary otherwise.
- Bad input fails early with an error that names what was wrong: empty or too-short audio, NaN/inf, unsupported
  dtypes or shapes, a missing or invalid sampling rate. Stereo arrays are mixed down to mono.

This file is remote code (copied next to the weights by `save_pretrained`): it imports only numpy, scipy, torch and
transformers at module level, and has no side effects on import.
"""

import io
import math
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import torch
from scipy.signal import resample_poly
from transformers.pipelines.audio_classification import AudioClassificationPipeline
from transformers.utils import logging


logger = logging.get_logger(__name__)

SONG_AGGREGATIONS = ("mean", "vote")
SLICE_REMAINDERS = ("end", "drop")
# A 2-D array is read as multichannel audio only if its shorter axis has at most this many channels.
MAX_CHANNELS = 8
# Integer PCM dtypes scaled to [-1, 1) by their full-scale value (the convention of WAV files and soundfile).
PCM_FULL_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}
# Float audio peaking above this is probably unscaled PCM (lossy decoders overshoot 1.0 a little: no warning for that).
PEAK_WARNING_THRESHOLD = 2.0
_UNSET = object()


def slice_starts(num_samples: int, slice_samples: int, hop_samples: int, remainder: str = "end") -> list[int]:
    """
    Start samples of the slices that cover a recording of `num_samples` samples.

    Slices are `slice_samples` long and start every `hop_samples` samples from 0. When they do not end exactly at the
    end of the recording, `remainder="end"` adds one last slice aligned to the end of the recording (it overlaps the
    previous one, so every sample is classified), `remainder="drop"` leaves the tail out (the way training slices
    are usually cut). A recording of at most one slice gives `[0]`: the caller classifies it whole.
    """
    if remainder not in SLICE_REMAINDERS:
        raise ValueError(f"`slice_remainder` must be one of {list(SLICE_REMAINDERS)}, got {remainder!r}.")
    if num_samples <= slice_samples:
        return [0]
    starts = list(range(0, num_samples - slice_samples + 1, hop_samples))
    if remainder == "end" and starts[-1] + slice_samples < num_samples:
        starts.append(num_samples - slice_samples)
    return starts


def aggregate_slice_scores(
    slice_scores: torch.Tensor, aggregation: str, vote_threshold: float | None = None
) -> tuple[torch.Tensor, list[int]]:
    """
    Combine per-slice scores `(num_slices, num_labels)` into the song-level scores `(num_labels,)`.

    - `"mean"`: the mean of the slice scores (probabilities after softmax).
    - `"vote"`: the fraction of the voting slices whose top label is each label; ties are broken by the mean score
      of the voting slices. Every slice votes, or with `vote_threshold` only the slices whose top score is strictly
      greater than it; when none is, all of them vote (the rules of `lca_metrics.vote_songs`, so that the pipeline and
      the song-level evaluation agree).

    A single slice returns its own scores with either aggregation (one vote would throw its probabilities away).

    Returns the song scores and the label ids ordered best first (ties: lower label id first).
    """
    if aggregation not in SONG_AGGREGATIONS:
        raise ValueError(f"`aggregation` must be one of {list(SONG_AGGREGATIONS)}, got {aggregation!r}.")
    slice_scores = slice_scores.double()
    if aggregation == "mean" or slice_scores.shape[0] == 1:
        song_scores = slice_scores.mean(dim=0)  # (num_labels,)
        sort_keys = [(-score,) for score in song_scores.tolist()]
    else:
        top_scores, winners = slice_scores.max(dim=-1)  # (num_slices,), (num_slices,)
        voting = torch.ones_like(winners, dtype=torch.bool)
        if vote_threshold is not None and (top_scores > vote_threshold).any():
            voting = top_scores > vote_threshold
        votes = torch.bincount(winners[voting], minlength=slice_scores.shape[-1]).double()  # (num_labels,)
        song_scores = votes / voting.sum()
        mean_scores = slice_scores[voting].mean(dim=0)  # (num_labels,)
        sort_keys = list(zip((-song_scores).tolist(), (-mean_scores).tolist()))
    order = sorted(range(len(sort_keys)), key=lambda label_id: (*sort_keys[label_id], label_id))
    return song_scores.float(), order


def mix_down(waveform: np.ndarray, name: str = "audio") -> np.ndarray:
    """
    Bring a 1-D or 2-D array to a mono `(samples,)` array; other shapes raise a `ValueError`.

    A 2-D array is multichannel audio: `(channels, samples)` or `(samples, channels)`, the channel axis being the
    shorter one, which must hold at most `MAX_CHANNELS` channels; the channels are averaged. A square array is
    ambiguous and refused.
    """
    if waveform.ndim == 1:
        return waveform
    if waveform.ndim != 2:
        raise ValueError(
            f"{name} must be a 1-D mono waveform (samples,) or a 2-D multichannel waveform (channels, samples) or "
            f"(samples, channels), got an array of shape {tuple(waveform.shape)}."
        )
    rows, columns = waveform.shape
    if rows == columns:
        raise ValueError(
            f"{name} has shape {tuple(waveform.shape)}: which axis holds the channels is ambiguous. Pass a 1-D mono "
            "waveform."
        )
    channel_axis = 0 if rows < columns else 1
    num_channels = waveform.shape[channel_axis]
    if num_channels > MAX_CHANNELS:
        raise ValueError(
            f"{name} has shape {tuple(waveform.shape)}, which does not look like multichannel audio (at most "
            f"{MAX_CHANNELS} channels on the shorter axis). Pass a 1-D mono waveform, or one recording at a time."
        )
    return waveform.mean(axis=channel_axis, dtype=np.float64).astype(waveform.dtype)


def as_float_waveform(waveform, name: str = "audio") -> np.ndarray:
    """
    Validate a waveform and return it as a float32 numpy array of the same shape.

    Floating point arrays and tensors are cast to float32; int16 and int32 PCM are scaled to [-1, 1) by their full
    scale (2**15, 2**31); every other dtype (other integers, bool, complex, object) raises a `TypeError`. Empty audio
    and NaN/inf values raise a `ValueError`.
    """
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu()
        if waveform.is_floating_point() and waveform.dtype not in (torch.float32, torch.float64):
            waveform = waveform.float()  # numpy has no bfloat16
        waveform = waveform.numpy()
    if not isinstance(waveform, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor, got {type(waveform).__name__}. Pass a path, bytes, an "
            'array, or a dict {"array": array, "sampling_rate": int}.'
        )
    if waveform.dtype in PCM_FULL_SCALE:
        waveform = (waveform.astype(np.float64) / PCM_FULL_SCALE[waveform.dtype]).astype(np.float32)
    elif np.issubdtype(waveform.dtype, np.floating):
        waveform = waveform.astype(np.float32)
    else:
        raise TypeError(
            f"{name} has dtype {waveform.dtype}; expected a floating point waveform (values in [-1, 1]) or int16/int32 "
            "PCM. Convert it, e.g. `array.astype(np.float32) / 32768` for 16-bit samples stored as another integer type."
        )
    if waveform.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(waveform.shape)}): there is nothing to classify.")
    finite = np.isfinite(waveform)
    if not finite.all():
        first_bad = int(np.flatnonzero(~finite.reshape(-1))[0])
        raise ValueError(
            f"{name} contains {int((~finite).sum())} NaN or infinite values (the first at flat index {first_bad})."
        )
    return waveform


def resample(waveform: np.ndarray, orig_sampling_rate: int, target_sampling_rate: int) -> np.ndarray:
    """
    Resample a mono float waveform with `scipy.signal.resample_poly` (polyphase FIR, Kaiser window), using the reduced
    ratio `target / orig` as up/down factors. Computed in float64, returned as float32.
    """
    if orig_sampling_rate == target_sampling_rate:
        return waveform
    ratio = Fraction(int(target_sampling_rate), int(orig_sampling_rate))
    resampled = resample_poly(waveform.astype(np.float64), ratio.numerator, ratio.denominator)
    return resampled.astype(np.float32)


def check_sampling_rate(sampling_rate, name: str = "sampling_rate") -> int:
    """Return `sampling_rate` as a positive int, or raise a `ValueError` naming the bad value."""
    if isinstance(sampling_rate, torch.Tensor) and sampling_rate.numel() == 1:
        sampling_rate = sampling_rate.item()
    is_number = isinstance(sampling_rate, (int, float, np.integer, np.floating)) and not isinstance(sampling_rate, bool)
    if not is_number or not math.isfinite(sampling_rate) or sampling_rate <= 0 or sampling_rate != int(sampling_rate):
        raise ValueError(f"`{name}` must be a positive integer number of samples per second, got {sampling_rate!r}.")
    return int(sampling_rate)


def _read_with_soundfile(source, name: str):
    """Decode with soundfile at the file's own rate: `(waveform (frames, channels) float32, rate)`, or `None` when
    soundfile is not installed or cannot read the format."""
    try:
        import soundfile
    except ImportError:
        return None
    try:
        waveform, sampling_rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError) as error:  # soundfile's LibsndfileError is a RuntimeError
        logger.info(f"soundfile cannot read {name} ({error}); decoding it with ffmpeg.")
        return None
    return waveform, sampling_rate


def _read_with_ffmpeg(source, sampling_rate: int, name: str) -> np.ndarray:
    """Decode a file path or bytes with the `ffmpeg` binary, which also mixes down to mono and resamples to
    `sampling_rate`. Returns a float32 `(samples,)` array."""
    if isinstance(source, bytes):
        input_arg, payload = "pipe:0", source
    else:
        input_arg, payload = source, None
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", input_arg]
    command += ["-ac", "1", "-ar", str(sampling_rate), "-f", "f32le", "pipe:1"]
    try:
        completed = subprocess.run(
            command, input=payload, stdin=None if payload is not None else subprocess.DEVNULL, capture_output=True
        )
    except FileNotFoundError as error:
        raise ValueError(
            f"Cannot decode {name}: soundfile could not read it and the `ffmpeg` binary is not installed "
            "(e.g. `apt-get install ffmpeg`)."
        ) from error
    waveform = np.frombuffer(completed.stdout, dtype=np.float32)
    if completed.returncode != 0 or waveform.size == 0:
        message = completed.stderr.decode(errors="replace").strip().splitlines()
        reason = message[-1] if message else "no audio samples decoded"
        raise ValueError(f"Cannot decode {name} as audio: {reason}.")
    return waveform.copy()


class SongLevelAudioClassificationPipeline(AudioClassificationPipeline):
    """
    Audio classification that answers at song level: a recording longer than the model's training slice is cut into
    slices of `config.slice_seconds`, each slice is classified, and the slice scores are combined (mean of the
    probabilities or majority vote). Needs neither torchaudio nor torchcodec.

    Example:

    ```python
    >>> from transformers import pipeline

    >>> classifier = pipeline("audio-classification", model="path/to/genremert-folder", trust_remote_code=True)
    >>> classifier("song.mp3", top_k=3)
    [{'score': 0.81, 'label': 'jazz'}, {'score': 0.11, 'label': 'blues'}, {'score': 0.04, 'label': 'classical'}]
    ```

    With an in-memory model, name the class and the feature extractor (a model object carries no folder to load them
    from):

    ```python
    >>> from modeling_genremert import build_feature_extractor
    >>> from pipeline_genremert import SongLevelAudioClassificationPipeline

    >>> classifier = pipeline(
    ...     "audio-classification",
    ...     model=model,
    ...     feature_extractor=build_feature_extractor(model.config),
    ...     pipeline_class=SongLevelAudioClassificationPipeline,
    ... )
    ```

    The model is put in eval mode: dropout and the counterfactual branch are training-only.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.feature_extractor is None:
            raise ValueError(
                "SongLevelAudioClassificationPipeline needs a feature extractor: load the pipeline from a saved model "
                "folder (it holds preprocessor_config.json) or pass "
                "`feature_extractor=build_feature_extractor(model.config)`."
            )
        model_rate = self.model.config.sampling_rate
        if self.feature_extractor.sampling_rate != model_rate:
            raise ValueError(
                f"The feature extractor works at {self.feature_extractor.sampling_rate} Hz but the model expects "
                f"config.sampling_rate = {model_rate} Hz: pass the feature extractor saved with this model."
            )
        self.model.eval()

    def check_model_type(self, supported_models):
        """Any audio classifier whose config says how long its slices are (`sampling_rate`, `slice_seconds`)."""
        config = self.model.config
        for field in ("sampling_rate", "slice_seconds"):
            if getattr(config, field, None) is None:
                raise ValueError(
                    f"SongLevelAudioClassificationPipeline needs `config.{field}`, which the config of "
                    f"{self.model.__class__.__name__} does not have."
                )

    @property
    def sampling_rate(self) -> int:
        """The model's sampling rate: every input is brought to it."""
        return int(self.model.config.sampling_rate)

    @property
    def slice_samples(self) -> int:
        """Length of one training slice in samples."""
        return int(round(self.model.config.slice_seconds * self.sampling_rate))

    @property
    def minimum_num_samples(self) -> int:
        """Shortest input the model can classify, from `model.minimum_input_length` (GenreMERT: the receptive field of
        its conv feature encoder; CRNN_FGNL: enough STFT frames to survive its 2×2 poolings); 1 for other models."""
        return int(getattr(self.model, "minimum_input_length", 1))

    def __call__(self, inputs, **kwargs):
        """
        Classify one recording (or a list of recordings) at song level.

        Args:
            inputs (`str`, `os.PathLike`, `bytes`, `np.ndarray`, `torch.Tensor` or `dict`):
                - a path to an audio file (wav, flac, ogg, mp3 through soundfile; any other format ffmpeg reads),
                  or `bytes` holding such a file: decoded at the file's own rate, mixed down, and resampled to the
                  model's rate;
                - a waveform array or tensor, assumed to be at the model's rate (`config.sampling_rate`), as in
                  Transformers: 1-D mono, or 2-D multichannel (mixed down by averaging the channels);
                - a dict `{"array" or "raw": waveform, "sampling_rate": int}` at any rate: resampled to the model's
                  rate with `scipy.signal.resample_poly`. A `"path"` key next to it (🤗 Datasets) is ignored;
                  an undecoded 🤗 Datasets cell `{"bytes": ..., "path": ...}` is decoded like a file.
                Float waveforms are expected in [-1, 1]; int16/int32 PCM is scaled to [-1, 1).
            top_k (`int`, *optional*, defaults to 5):
                How many labels to return; `None` returns every label.
            function_to_apply (`str`, *optional*):
                `"softmax"` (default for single-label classification), `"sigmoid"` or `"none"`, applied to every
                slice's logits before aggregation.
            aggregation (`str`, *optional*, defaults to `config.song_aggregation`):
                `"mean"` of the slice scores, or `"vote"`: the fraction of slices whose top label is each label
                (ties broken by the mean score).
            vote_threshold (`float`, *optional*):
                With `"vote"`: only slices whose top score is strictly greater than this vote (all of them when none
                is), as in `lca_metrics.vote_songs`. Pick it on validation data.
            slice_overlap_seconds (`float`, *optional*, defaults to 0.0):
                Overlap between consecutive slices; the hop is `slice_seconds - slice_overlap_seconds`.
            slice_remainder (`str`, *optional*, defaults to `"end"`):
                `"end"`: when the slices do not reach the end of the recording, one more slice is aligned to its end;
                `"drop"`: the tail shorter than a hop is left out.
            slice_batch_size (`int`, *optional*, defaults to 8):
                How many slices go through the model at once.
            return_slices (`bool`, *optional*, defaults to `False`):
                Return a dict `{"scores": song answer, "aggregation": str, "slices": [{"start", "end" (seconds),
                "scores"}, ...]}` instead of the song answer alone.

        Return:
            A list of `{"label": str, "score": float}`, best first (or the dict above with `return_slices=True`).
        """
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(
        self,
        top_k=_UNSET,
        function_to_apply=None,
        aggregation=None,
        vote_threshold=None,
        slice_overlap_seconds=None,
        slice_remainder=None,
        slice_batch_size=None,
        return_slices=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"Unknown argument(s) {sorted(kwargs)} for SongLevelAudioClassificationPipeline; expected top_k, "
                "function_to_apply, aggregation, vote_threshold, slice_overlap_seconds, slice_remainder, "
                "slice_batch_size, return_slices, batch_size, num_workers."
            )
        preprocess_params, forward_params, postprocess_params = {}, {}, {}

        if top_k is not _UNSET:
            num_labels = self.model.config.num_labels
            if top_k is None:
                top_k = num_labels
            elif isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
                raise ValueError(f"`top_k` must be a positive integer or None, got {top_k!r}.")
            postprocess_params["top_k"] = min(int(top_k), num_labels)
        if function_to_apply is not None:
            if function_to_apply not in ("softmax", "sigmoid", "none"):
                raise ValueError(
                    f"`function_to_apply` must be one of ['softmax', 'sigmoid', 'none'], got {function_to_apply!r}."
                )
            postprocess_params["function_to_apply"] = function_to_apply
        if aggregation is not None:
            if aggregation not in SONG_AGGREGATIONS:
                raise ValueError(f"`aggregation` must be one of {list(SONG_AGGREGATIONS)}, got {aggregation!r}.")
            postprocess_params["aggregation"] = aggregation
        if vote_threshold is not None:
            if isinstance(vote_threshold, bool) or not isinstance(vote_threshold, (int, float)):
                raise ValueError(f"`vote_threshold` must be a number in [0, 1), got {vote_threshold!r}.")
            if not 0.0 <= vote_threshold < 1.0:
                raise ValueError(f"`vote_threshold` must be in [0, 1), got {vote_threshold!r}.")
            postprocess_params["vote_threshold"] = float(vote_threshold)
        if return_slices is not None:
            postprocess_params["return_slices"] = bool(return_slices)

        if slice_overlap_seconds is not None:
            slice_seconds = self.model.config.slice_seconds
            if not isinstance(slice_overlap_seconds, (int, float)) or not 0 <= slice_overlap_seconds < slice_seconds:
                raise ValueError(
                    f"`slice_overlap_seconds` must be in [0, slice_seconds={slice_seconds}), got "
                    f"{slice_overlap_seconds!r}."
                )
            preprocess_params["slice_overlap_seconds"] = float(slice_overlap_seconds)
        if slice_remainder is not None:
            if slice_remainder not in SLICE_REMAINDERS:
                raise ValueError(
                    f"`slice_remainder` must be one of {list(SLICE_REMAINDERS)}, got {slice_remainder!r}."
                )
            preprocess_params["slice_remainder"] = slice_remainder
        if slice_batch_size is not None:
            if isinstance(slice_batch_size, bool) or not isinstance(slice_batch_size, int) or slice_batch_size < 1:
                raise ValueError(f"`slice_batch_size` must be a positive integer, got {slice_batch_size!r}.")
            forward_params["slice_batch_size"] = slice_batch_size
        return preprocess_params, forward_params, postprocess_params

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # One recording gives a variable number of slices, already batched by `slice_batch_size`: recordings are
        # never padded together, so lists are processed one recording at a time.
        if batch_size != 1:
            logger.warning(
                f"SongLevelAudioClassificationPipeline ignores batch_size={batch_size}: it classifies one recording at "
                "a time and batches that recording's slices; use `slice_batch_size` instead."
            )
        return super().get_iterator(inputs, num_workers, 1, preprocess_params, forward_params, postprocess_params)

    def load_waveform(self, inputs) -> np.ndarray:
        """
        Turn any supported input into a float32 mono waveform `(samples,)` at the model's sampling rate, validated
        (dtype, shape, NaN/inf, emptiness) but not yet checked for length.
        """
        target_rate = self.sampling_rate
        if isinstance(inputs, os.PathLike):
            inputs = os.fspath(inputs)

        if isinstance(inputs, str):
            if inputs.startswith(("http://", "https://")):
                from huggingface_hub.utils import httpx

                return self._decode(httpx.get(inputs, follow_redirects=True).content, f"audio downloaded from {inputs}")
            if not os.path.isfile(inputs):
                raise FileNotFoundError(f"Audio file not found: {inputs!r}.")
            return self._decode(inputs, f"audio file {inputs!r}")
        if isinstance(inputs, (bytes, bytearray)):
            return self._decode(bytes(inputs), "audio bytes")

        # An `AudioDecoder` input means torchcodec is already imported: it is never imported here.
        torchcodec = sys.modules.get("torchcodec")
        if torchcodec is not None and isinstance(inputs, torchcodec.decoders.AudioDecoder):
            samples = inputs.get_all_samples()
            inputs = {"array": samples.data, "sampling_rate": samples.sample_rate}

        if isinstance(inputs, dict):
            array_keys = [key for key in ("array", "raw") if key in inputs]
            if not array_keys and (inputs.get("bytes") is not None or inputs.get("path") is not None):
                # An undecoded 🤗 Datasets audio cell (`Audio(decode=False)`): {"bytes": ... or None, "path": ...}.
                if inputs.get("bytes") is not None:
                    return self._decode(bytes(inputs["bytes"]), f"audio bytes of {inputs.get('path')!r}")
                return self.load_waveform(os.fspath(inputs["path"]))
            if len(array_keys) != 1 or "sampling_rate" not in inputs:
                raise ValueError(
                    'A dict input must hold the waveform under exactly one of "array" or "raw" and its rate under '
                    '"sampling_rate" (or be an undecoded 🤗 Datasets audio cell {"bytes": ..., "path": ...}), got keys '
                    f"{sorted(inputs)}."
                )
            input_rate = check_sampling_rate(inputs["sampling_rate"], name='"sampling_rate" of the dict input')
            name = f"the dict input's {array_keys[0]!r}"
            waveform = mix_down(as_float_waveform(inputs[array_keys[0]], name), name)
            return resample(waveform, input_rate, target_rate)

        if isinstance(inputs, (np.ndarray, torch.Tensor)):
            # A bare waveform carries no rate: it is assumed to be at the model's rate, as in Transformers.
            return mix_down(as_float_waveform(inputs, "audio array"), "audio array")

        raise TypeError(
            f"Unsupported audio input of type {type(inputs).__name__}; expected a file path, bytes, a numpy array or "
            'torch tensor at the model\'s sampling rate, or a dict {"array": ..., "sampling_rate": int}.'
        )

    def _decode(self, source, name: str) -> np.ndarray:
        """Decode a file path or file bytes to a float32 mono waveform at the model's rate: soundfile at the file's
        own rate, then mix-down and `resample`; ffmpeg (which mixes down and resamples itself) when soundfile is not
        installed or cannot read the format."""
        if isinstance(source, bytes) and not source:
            raise ValueError(f"{name} are empty: there is nothing to decode.")
        decoded = _read_with_soundfile(io.BytesIO(source) if isinstance(source, bytes) else source, name)
        if decoded is None:
            return as_float_waveform(_read_with_ffmpeg(source, self.sampling_rate, name), name)
        waveform, file_rate = decoded  # (frames, channels): the channel axis is known, no guessing
        waveform = as_float_waveform(waveform, name).mean(axis=1, dtype=np.float64).astype(np.float32)  # (frames,)
        return resample(waveform, file_rate, self.sampling_rate)

    def preprocess(self, inputs, slice_overlap_seconds=0.0, slice_remainder="end"):
        waveform = self.load_waveform(inputs)  # (samples,) float32 at self.sampling_rate
        num_samples = waveform.shape[0]
        minimum = self.minimum_num_samples
        if num_samples < minimum:
            raise ValueError(
                f"The audio is too short: {num_samples} samples ({num_samples / self.sampling_rate:.4f} s at "
                f"{self.sampling_rate} Hz) after decoding and resampling; this model needs at least {minimum} samples "
                f"({minimum / self.sampling_rate:.4f} s)."
            )
        peak = float(np.abs(waveform).max())
        if peak > PEAK_WARNING_THRESHOLD:
            logger.warning_once(
                f"The audio reaches {peak:.1f} in amplitude, far outside [-1, 1] where float waveforms are expected: "
                "integer PCM stored as floats? Pass it as int16/int32 so that it is scaled."
            )

        slice_samples = min(self.slice_samples, num_samples)  # a short recording is one slice, classified whole
        hop_samples = self.slice_samples - int(round(slice_overlap_seconds * self.sampling_rate))
        if hop_samples < 1:
            raise ValueError(
                f"`slice_overlap_seconds`={slice_overlap_seconds} leaves no hop between slices of "
                f"{self.model.config.slice_seconds} s at {self.sampling_rate} Hz; use a smaller overlap."
            )
        starts = slice_starts(num_samples, self.slice_samples, hop_samples, slice_remainder)
        # The slices are cut and feature-extracted batch by batch in `_forward`, so memory stays bounded by
        # `slice_batch_size` whatever the length and overlap. numpy/Python values: the base class moves only tensors
        # to the device, and only the slices need to go there.
        return {"waveform": waveform, "slice_starts": starts, "slice_samples": slice_samples}

    def _forward(self, model_inputs, slice_batch_size=8):
        waveform = model_inputs["waveform"]  # (samples,) numpy float32
        starts = model_inputs["slice_starts"]  # list of slice start samples
        slice_samples = model_inputs["slice_samples"]
        logits = []
        for begin in range(0, len(starts), slice_batch_size):
            batch_starts = starts[begin : begin + slice_batch_size]
            slices = np.stack([waveform[start : start + slice_samples] for start in batch_starts])  # (batch, samples)
            # Rows of a 2-D array are separate examples: each slice is normalised on its own, as in training.
            batch = self.feature_extractor(slices, sampling_rate=self.sampling_rate, return_tensors="pt")
            if self.dtype is not None:
                batch["input_values"] = batch["input_values"].to(self.dtype)
            batch = self._ensure_tensor_on_device(dict(batch), self.device)
            logits.append(self.model(**batch).logits.float())  # (batch, num_labels)
        return {
            "logits": torch.cat(logits),  # (slices, num_labels)
            "slice_starts": torch.tensor(starts),  # (slices,)
            "slice_lengths": torch.full((len(starts),), slice_samples),  # (slices,)
        }

    def postprocess(
        self,
        model_outputs,
        top_k=5,
        function_to_apply=None,
        aggregation=None,
        vote_threshold=None,
        return_slices=False,
    ):
        config = self.model.config
        if function_to_apply is None:
            if config.problem_type == "regression":
                function_to_apply = "none"
            elif config.problem_type == "multi_label_classification":
                function_to_apply = "sigmoid"
            else:
                function_to_apply = "softmax"
        if aggregation is None:
            aggregation = getattr(config, "song_aggregation", "mean")

        logits = model_outputs["logits"]  # (slices, num_labels)
        if function_to_apply == "softmax":
            slice_scores = logits.softmax(dim=-1)
        elif function_to_apply == "sigmoid":
            slice_scores = logits.sigmoid()
        else:
            slice_scores = logits
        song_scores, order = aggregate_slice_scores(slice_scores, aggregation, vote_threshold)

        def ranked(scores: torch.Tensor, label_order: list[int]) -> list[dict]:
            return [{"score": float(scores[i]), "label": config.id2label[i]} for i in label_order[:top_k]]

        song = ranked(song_scores, order)
        if not return_slices:
            return song
        slices = []
        for start, length, scores in zip(
            model_outputs["slice_starts"].tolist(), model_outputs["slice_lengths"].tolist(), slice_scores
        ):
            slice_order = sorted(range(scores.shape[0]), key=lambda i: (-float(scores[i]), i))
            slices.append(
                {
                    "start": start / self.sampling_rate,
                    "end": (start + length) / self.sampling_rate,
                    "scores": ranked(scores, slice_order),
                }
            )
        return {"scores": song, "aggregation": aggregation, "slices": slices}


__all__ = ["SongLevelAudioClassificationPipeline", "slice_starts", "aggregate_slice_scores"]
