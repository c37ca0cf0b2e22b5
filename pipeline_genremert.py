"""Song-level audio-classification pipeline of the genremert models.

`pipeline("audio-classification", model=folder, trust_remote_code=True)` loads
[`SongLevelAudioClassificationPipeline`] from a saved model folder (the configs carry `custom_pipelines`). It differs
from the stock [`~transformers.AudioClassificationPipeline`] in three ways:

- A recording is cut into slices of the training length (`config.slice_seconds`), the model classifies every slice
  and the song-level answer combines them by the rule the config saves (`config.song_aggregation`,
  `config.vote_threshold`, `config.slice_overlap_seconds`, `config.slice_remainder`): the rule of the song-level
  evaluation of `run_classification.py`, so the pipeline reproduces the song figures of the model card. Slicing,
  decoding, resampling and the song vote are the functions of `audio_genremert.py`, shared with training.
- It needs neither torchaudio nor torchcodec: files are decoded with soundfile (the `ffmpeg` binary for formats
  libsndfile cannot read) and resampled with soxr, exactly as the training data; soundfile's formats block by block,
  the slices cut as the blocks arrive, so the memory a file needs does not grow with its length.
- Bad input fails early with an error that names what was wrong: empty or too-short audio, NaN/inf, unsupported
  dtypes or shapes, a missing or invalid sampling rate. Stereo arrays are mixed down to mono.

This file is remote code (copied next to the weights by `save_pretrained`): it imports only numpy, torch,
transformers and its siblings at module level, and has no side effects on import.
"""

import math
import os
import sys
import warnings

import numpy as np
import torch
from transformers.pipelines.audio_classification import AudioClassificationPipeline
from transformers.utils import logging


try:  # inside a remote-code folder (transformers copies siblings imported this way)
    from .audio_genremert import (
        SLICE_REMAINDERS,
        SONG_AGGREGATIONS,
        aggregate_songs,
        average_channels,
        decode_audio,
        decoded_num_samples,
        resample,
        slice_samples_of,
        slice_starts,
        song_ranking,
        stream_audio,
        stream_slices,
    )
except ImportError:  # flat checkout
    from audio_genremert import (
        SLICE_REMAINDERS,
        SONG_AGGREGATIONS,
        aggregate_songs,
        average_channels,
        decode_audio,
        decoded_num_samples,
        resample,
        slice_samples_of,
        slice_starts,
        song_ranking,
        stream_audio,
        stream_slices,
    )


logger = logging.get_logger(__name__)

SILENCE_PEAK = 1e-4  # a recording whose peak stays below -80 dBFS is silent (the up-front check's threshold)
# A 2-D array is read as multichannel audio only if its shorter axis has at most this many channels.
MAX_CHANNELS = 8
# Integer PCM dtypes scaled to [-1, 1) by their full-scale value (the convention of WAV files and soundfile).
PCM_FULL_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}
# Float audio peaking above this is probably unscaled PCM (lossy decoders overshoot 1.0 a little: no warning for that).
PEAK_WARNING_THRESHOLD = 2.0
_UNSET = object()


def mix_down(waveform: np.ndarray, name: str = "audio") -> np.ndarray:
    """
    Bring a 1-D or 2-D array to a mono `(samples,)` array; other shapes raise a `ValueError`.

    A 2-D array is multichannel audio: `(channels, samples)` or `(samples, channels)`, the channel axis being the
    shorter one, which must hold at most `MAX_CHANNELS` channels; the channels are averaged in float32 by
    `audio_genremert.average_channels`, the mix-down of decoded files. A square array is ambiguous and refused.
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
    return average_channels(waveform, channel_axis)  # float32, the mix-down of decoded files too


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


# Rates music is recorded and stored at: a bare array of a whole number of seconds at one of them, above the model's
# rate and not a whole number of seconds at it, was probably not resampled (lower rates give false alarms: 3.5 s at
# 16 kHz is 7 s at 8 kHz).
RECORDING_SAMPLING_RATES = (22050, 44100, 48000, 88200, 96000)


def warn_if_another_rate(num_samples: int, model_rate: int) -> str | None:
    """Warns (and returns the message) when a bare array's length is a whole number of seconds at a common rate but
    not at the model's: it is taken as `model_rate` audio, which then plays at the wrong speed and pitch."""
    if num_samples % model_rate == 0:
        return None
    for rate in sorted(RECORDING_SAMPLING_RATES, reverse=True):  # the highest that fits: 3 s at 44.1 kHz, not 6 at 22
        if rate > model_rate and num_samples >= rate and num_samples % rate == 0:
            message = (
                f"The audio array has {num_samples} samples: {num_samples // rate} s at {rate} Hz, but it is read at "
                f"the model's {model_rate} Hz ({num_samples / model_rate:.2f} s). If it was recorded at {rate} Hz, "
                f'pass {{"array": array, "sampling_rate": {rate}}} so that it is resampled.'
            )
            warnings.warn(message, UserWarning, stacklevel=4)
            return message
    return None


def check_sampling_rate(sampling_rate, name: str = "sampling_rate") -> int:
    """Return `sampling_rate` as a positive int, or raise a `ValueError` naming the bad value."""
    if isinstance(sampling_rate, torch.Tensor) and sampling_rate.numel() == 1:
        sampling_rate = sampling_rate.item()
    is_number = isinstance(sampling_rate, (int, float, np.integer, np.floating)) and not isinstance(sampling_rate, bool)
    if not is_number or not math.isfinite(sampling_rate) or sampling_rate <= 0 or sampling_rate != int(sampling_rate):
        raise ValueError(f"`{name}` must be a positive integer number of samples per second, got {sampling_rate!r}.")
    return int(sampling_rate)


def _describe(item) -> str:
    """A short name of one pipeline input, for error messages."""
    if isinstance(item, (str, os.PathLike)):
        return repr(os.fspath(item))
    if isinstance(item, dict) and isinstance(item.get("path"), str):
        return repr(item["path"])
    return type(item).__name__


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
                  model's rate, block by block; a directory raises `IsADirectoryError`;
                - a waveform array or tensor, assumed to be at the model's rate (`config.sampling_rate`), as in
                  Transformers: 1-D mono, or 2-D multichannel (mixed down by averaging the channels);
                - a dict `{"array" or "raw": waveform, "sampling_rate": int}` at any rate: resampled to the model's
                  rate with soxr, as the training data. A `"path"` key next to it (🤗 Datasets) is ignored;
                  an undecoded 🤗 Datasets cell `{"bytes": ..., "path": ...}` is decoded like a file.
                Float waveforms are expected in [-1, 1]; int16/int32 PCM is scaled to [-1, 1).
            top_k (`int`, *optional*, defaults to 5):
                How many labels to return; `None` returns every label.
            threshold (`float`, *optional*):
                Return only the labels whose song score is at least this (after `top_k`): for a multi-label tagger
                (`config.problem_type = "multi_label_classification"`), the tags that apply, each with its probability.
            function_to_apply (`str`, *optional*):
                `"softmax"` (default for single-label classification), `"sigmoid"` or `"none"`, applied to every
                slice's logits before aggregation.
            aggregation (`str`, *optional*, defaults to `config.song_aggregation`):
                `"vote"`: the fraction of slices whose top label is each label (ties broken by the summed score), or
                `"mean"` of the slice scores (`audio_genremert.aggregate_songs`). A multi-label model always uses
                `"mean"` (each tag's probability averaged over the slices, the rule of its evaluation).
            vote_threshold (`float`, *optional*, defaults to `config.vote_threshold`):
                With `"vote"`: only slices whose top score is strictly greater than this vote (all of them when none
                is). `run_classification.py` chooses it on validation data and saves it in the config.
            slice_overlap_seconds (`float`, *optional*, defaults to `config.slice_overlap_seconds`):
                Overlap between consecutive slices; the hop is `slice_seconds - slice_overlap_seconds`.
            slice_remainder (`str`, *optional*, defaults to `config.slice_remainder`):
                `"end"`: when the slices do not reach the end of the recording, one more slice is aligned to its end;
                `"drop"`: the tail shorter than a hop is left out. A recording shorter than one slice is zero-padded
                to one slice.
            slice_batch_size (`int`, *optional*, defaults to 8):
                How many slices go through the model at once. A file (path, bytes, URL) read by soundfile is
                decoded, resampled and sliced block by block: its memory does not grow with its length. An array
                is in memory already: the pipeline adds one float32 mono copy of it at the model's rate.
            autocast_dtype (`str`, *optional*):
                `"bfloat16"` (CPU or GPU) or `"float16"` (GPU): run the model under `torch.autocast` of that dtype. To
                run the weights themselves in reduced precision, load with `pipeline(..., dtype=torch.bfloat16)`.
            compile (`bool` or `str`, *optional*, defaults to `False`):
                Run the model through `torch.compile` (compiled once, at the first slice batch; a new batch size
                recompiles): `True` for its default backend (inductor), or a backend name (e.g. `"aot_eager"`).
                Worth it for many recordings; the first batch pays the compile time (minutes on a small CPU).
            return_slices (`bool`, *optional*, defaults to `False`):
                Return a dict `{"scores": song answer, "aggregation": str, "slices": [{"start", "end" (seconds),
                "scores"}, ...]}` instead of the song answer alone.
            errors (`str`, *optional*, defaults to `"raise"`):
                For a list of recordings: `"raise"` stops at the first bad recording with an error naming its index
                (Transformers' convention); `"return"` puts `{"error": message}` in its place and answers the others.

        A Python list is a batch of recordings, as in Transformers; one waveform is a numpy array or a tensor.

        Return:
            A list of `{"label": str, "score": float}`, best first (or the dict above with `return_slices=True`).
        """
        errors = kwargs.pop("errors", "raise")
        if errors not in ("raise", "return"):
            raise ValueError(f"`errors` must be 'raise' or 'return', got {errors!r}.")
        if not isinstance(inputs, (list, tuple)):
            return super().__call__(inputs, **kwargs)
        if inputs and all(isinstance(item, (int, float, np.number)) for item in inputs):
            raise TypeError(
                f"Got a list of {len(inputs)} numbers: a list is a batch of recordings. Pass one waveform as a numpy "
                "array or a torch tensor (e.g. `np.asarray(samples, dtype=np.float32)`)."
            )
        answers = []
        for index, item in enumerate(inputs):
            try:
                answers.append(super().__call__(item, **kwargs))
            except (ValueError, TypeError, FileNotFoundError, IsADirectoryError) as error:
                message = f"recording {index} of {len(inputs)} ({_describe(item)}): {error}"
                if errors == "raise":
                    raise type(error)(message) from error
                answers.append({"error": message})
        return answers

    def _sanitize_parameters(
        self,
        top_k=_UNSET,
        threshold=None,
        function_to_apply=None,
        aggregation=None,
        vote_threshold=None,
        slice_overlap_seconds=None,
        slice_remainder=None,
        slice_batch_size=None,
        return_slices=None,
        autocast_dtype=None,
        compile=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"Unknown argument(s) {sorted(kwargs)} for SongLevelAudioClassificationPipeline; expected top_k, "
                "threshold, function_to_apply, aggregation, vote_threshold, slice_overlap_seconds, slice_remainder, "
                "slice_batch_size, return_slices, autocast_dtype, compile, batch_size, num_workers."
            )
        preprocess_params, forward_params, postprocess_params = {}, {}, {}

        if top_k is not _UNSET:
            num_labels = self.model.config.num_labels
            if top_k is None:
                top_k = num_labels
            elif isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
                raise ValueError(f"`top_k` must be a positive integer or None, got {top_k!r}.")
            postprocess_params["top_k"] = min(int(top_k), num_labels)
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
                raise ValueError(f"`threshold` must be a number (a score, e.g. a tag probability), got {threshold!r}.")
            postprocess_params["threshold"] = float(threshold)
        if function_to_apply is not None:
            if function_to_apply not in ("softmax", "sigmoid", "none"):
                raise ValueError(
                    f"`function_to_apply` must be one of ['softmax', 'sigmoid', 'none'], got {function_to_apply!r}."
                )
            postprocess_params["function_to_apply"] = function_to_apply
        if aggregation is not None:
            if aggregation not in SONG_AGGREGATIONS:
                raise ValueError(f"`aggregation` must be one of {list(SONG_AGGREGATIONS)}, got {aggregation!r}.")
            if aggregation == "vote" and self.model.config.problem_type == "multi_label_classification":
                raise ValueError(
                    "`aggregation='vote'` needs one class per slice; this model tags (multi_label_classification): "
                    "its song scores are the mean of the slices' tag probabilities."
                )
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
                raise ValueError(f"`slice_remainder` must be one of {list(SLICE_REMAINDERS)}, got {slice_remainder!r}.")
            preprocess_params["slice_remainder"] = slice_remainder
        if autocast_dtype is not None:
            if autocast_dtype not in ("bfloat16", "float16"):
                raise ValueError(f"`autocast_dtype` must be 'bfloat16' or 'float16', got {autocast_dtype!r}.")
            forward_params["autocast_dtype"] = autocast_dtype
        if compile is not None and compile is not False:
            if compile is not True and not isinstance(compile, str):
                raise ValueError(f"`compile` must be True, False or a torch.compile backend name, got {compile!r}.")
            forward_params["compile"] = "inductor" if compile is True else compile
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

    def audio_file_source(self, inputs):
        """
        `(path or bytes, name)` of an input that is an audio file: a path (`str`, `os.PathLike`), file bytes, an
        `http(s)://` URL (downloaded) or an undecoded 🤗 Datasets cell `{"bytes": ..., "path": ...}`; `None` for a
        waveform input. A missing path raises `FileNotFoundError`, a directory `IsADirectoryError`.
        """
        if isinstance(inputs, os.PathLike):
            inputs = os.fspath(inputs)
        if isinstance(inputs, str):
            if inputs.startswith(("http://", "https://")):
                from huggingface_hub.utils import httpx

                return httpx.get(inputs, follow_redirects=True).content, f"audio downloaded from {inputs}"
            if os.path.isdir(inputs):
                raise IsADirectoryError(f"{inputs!r} is a directory, expected an audio file.")
            if not os.path.isfile(inputs):
                raise FileNotFoundError(f"Audio file not found: {inputs!r}.")
            return inputs, f"audio file {inputs!r}"
        if isinstance(inputs, (bytes, bytearray)):
            return bytes(inputs), "audio bytes"
        if isinstance(inputs, dict) and not any(key in inputs for key in ("array", "raw")):
            # An undecoded 🤗 Datasets audio cell (`Audio(decode=False)`): {"bytes": ... or None, "path": ...}.
            if inputs.get("bytes") is not None:
                return bytes(inputs["bytes"]), f"audio bytes of {inputs.get('path')!r}"
            if inputs.get("path") is not None:
                return self.audio_file_source(os.fspath(inputs["path"]))
        return None

    def load_waveform(self, inputs) -> np.ndarray:
        """
        Turn any supported input into a float32 mono waveform `(samples,)` at the model's sampling rate, validated
        (dtype, shape, NaN/inf, emptiness) but not yet checked for length. A file is decoded whole here; the pipeline
        itself streams files (`audio_genremert.stream_audio`).
        """
        source = self.audio_file_source(inputs)
        if source is not None:
            return self._decode(*source)
        target_rate = self.sampling_rate

        # An `AudioDecoder` input means torchcodec is already imported: it is never imported here.
        torchcodec = sys.modules.get("torchcodec")
        if torchcodec is not None and isinstance(inputs, torchcodec.decoders.AudioDecoder):
            samples = inputs.get_all_samples()
            inputs = {"array": samples.data, "sampling_rate": samples.sample_rate}

        if isinstance(inputs, dict):
            array_keys = [key for key in ("array", "raw") if key in inputs]
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
            waveform = mix_down(as_float_waveform(inputs, "audio array"), "audio array")
            warn_if_another_rate(len(waveform), target_rate)
            return waveform

        raise TypeError(
            f"Unsupported audio input of type {type(inputs).__name__}; expected a file path, bytes, a numpy array or "
            'torch tensor at the model\'s sampling rate, or a dict {"array": ..., "sampling_rate": int}.'
        )

    def _decode(self, source, name: str) -> np.ndarray:
        """Decode a file path or file bytes to a float32 mono waveform at the model's rate, exactly as the training
        data is decoded (`audio_genremert.decode_audio`)."""
        return decode_audio(source, self.sampling_rate, name)

    def _check_length(self, num_samples: int) -> None:
        minimum = self.minimum_num_samples
        if num_samples < minimum:
            raise ValueError(
                f"The audio is too short: {num_samples} samples ({num_samples / self.sampling_rate:.4f} s at "
                f"{self.sampling_rate} Hz) after decoding and resampling; this model needs at least {minimum} samples "
                f"({minimum / self.sampling_rate:.4f} s)."
            )

    def _warn_about_level(self, peak: float) -> None:
        """Warnings for a silent recording and for float audio far outside [-1, 1], from its peak amplitude."""
        if peak < SILENCE_PEAK:
            logger.warning(
                f"The audio is silent (peak {peak:.2g}, below -80 dBFS): the answer says nothing about its content."
            )
        if peak > PEAK_WARNING_THRESHOLD:
            logger.warning_once(
                f"The audio reaches {peak:.1f} in amplitude, far outside [-1, 1] where float waveforms are expected: "
                "integer PCM stored as floats? Pass it as int16/int32 so that it is scaled."
            )

    def preprocess(self, inputs, slice_overlap_seconds=None, slice_remainder=None):
        config = self.model.config
        if slice_overlap_seconds is None:
            slice_overlap_seconds = getattr(config, "slice_overlap_seconds", 0.0)
        if slice_remainder is None:
            slice_remainder = getattr(config, "slice_remainder", "drop")
        slice_samples, hop_samples = slice_samples_of(config.slice_seconds, slice_overlap_seconds, self.sampling_rate)
        # The slices of the song-level evaluation (`audio_genremert.slice_starts`): a recording shorter than one slice
        # is zero-padded to one slice. They are cut in `_forward` as the waveform arrives and go through the feature
        # extractor and the model `slice_batch_size` at a time. Only numpy/Python values here: the base class moves
        # only tensors to the device, and only the slices need to go there.
        slicing = {"slice_samples": slice_samples, "hop_samples": hop_samples, "slice_remainder": slice_remainder}

        def with_starts(num_samples: int) -> dict:
            return {**slicing, "slice_starts": slice_starts(num_samples, slice_samples, hop_samples, slice_remainder)}

        source = self.audio_file_source(inputs)
        if source is not None:
            audio, name = source
            # The header gives the decoded length (decoding trims or pads to it): the length is checked before any
            # decoding, and the file is decoded, resampled and sliced block by block in `_forward`, so the memory a
            # file needs does not grow with its length. Only a format that just the ffmpeg binary reads (no header
            # length) is decoded whole, here.
            num_samples = decoded_num_samples(audio, self.sampling_rate, name)
            if num_samples is not None:
                self._check_length(num_samples)
                return {"audio_file": audio, "audio_name": name, **with_starts(num_samples)}
            waveform = self._decode(audio, name)
        else:
            waveform = self.load_waveform(inputs)  # (samples,) float32 at self.sampling_rate
        self._check_length(waveform.shape[0])
        self._warn_about_level(float(np.abs(waveform).max()))
        return {"waveform": waveform, **with_starts(waveform.shape[0])}

    def _forward(self, model_inputs, slice_batch_size=8, autocast_dtype=None, compile=None):
        peak = 0.0

        def tracking_peak(blocks):
            nonlocal peak
            for block in blocks:
                if block.size:
                    peak = max(peak, float(np.abs(block).max()))
                yield block

        if "waveform" in model_inputs:
            blocks = [model_inputs["waveform"]]  # (samples,) numpy float32, checked in `preprocess`
        else:
            blocks = tracking_peak(
                stream_audio(model_inputs["audio_file"], self.sampling_rate, model_inputs["audio_name"])
            )
        slice_samples, starts = model_inputs["slice_samples"], model_inputs["slice_starts"]
        slices = stream_slices(blocks, slice_samples, model_inputs["hop_samples"], model_inputs["slice_remainder"])
        # The slices' logits go into one tensor allocated at the first batch: a small tensor kept per batch would be
        # scattered among the model's freed activations and make the heap (RSS) creep up with the length.
        logits = None  # (slices, num_labels)
        done, batch, changed = 0, [], False
        for index, (start, segment) in enumerate(slices):  # `stream_slices` cuts the slices of `slice_starts` ...
            if index >= len(starts) or start != starts[index]:
                changed = True  # ... unless the file's length changed since `preprocess` read its header
                break
            batch.append(segment)
            if len(batch) == slice_batch_size or done + len(batch) == len(starts):
                batch_logits = self._classify_slices(np.stack(batch), autocast_dtype, compile)
                if logits is None:
                    logits = batch_logits.new_empty((len(starts), batch_logits.shape[1]))
                logits[done : done + len(batch)] = batch_logits
                done, batch = done + len(batch), []
        if changed or done != len(starts):
            raise ValueError(
                f"{model_inputs.get('audio_name', 'the audio')} changed while it was being classified: its header "
                f"announced {len(starts)} slices, its audio gives others. Classify it again."
            )
        if "waveform" not in model_inputs:
            self._warn_about_level(peak)
        return {
            "logits": logits,  # (slices, num_labels)
            "slice_starts": torch.tensor(starts),  # (slices,)
            "slice_lengths": torch.full((len(starts),), slice_samples),  # (slices,)
        }

    def _classify_slices(self, slices: np.ndarray, autocast_dtype=None, compile=None) -> torch.Tensor:
        """float32 logits `(batch, num_labels)` of the slices `(batch, samples)`; with `compile` (a backend name),
        through the model compiled once with that backend."""
        # Rows of a 2-D array are separate examples: each slice is normalised on its own, as in training.
        batch = self.feature_extractor(slices, sampling_rate=self.sampling_rate, return_tensors="pt")
        if self.dtype is not None:  # waveforms or a spectrogram backbone's features
            batch = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in batch.items()}
        batch = self._ensure_tensor_on_device(dict(batch), self.device)
        model = self.model
        if compile is not None:
            if getattr(self, "_compiled", (None, None))[0] != compile:  # compiled once per backend, kept
                self._compiled = (compile, torch.compile(self.model, backend=compile))
            model = self._compiled[1]
        if autocast_dtype is None:
            return model(**batch).logits.float()
        # Mixed precision on a float32 model (the log-mel and the softmaxes stay in float32).
        with torch.autocast(self.device.type, dtype=getattr(torch, autocast_dtype)):
            return model(**batch).logits.float()

    def postprocess(
        self,
        model_outputs,
        top_k=5,
        function_to_apply=None,
        aggregation=None,
        vote_threshold=None,
        return_slices=False,
        threshold=None,
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
            aggregation = getattr(config, "song_aggregation", "vote")
            if vote_threshold is None:
                vote_threshold = getattr(config, "vote_threshold", None)
        if config.problem_type == "multi_label_classification":
            aggregation = "mean"  # independent tags: each tag's probability averaged over the slices

        logits = model_outputs["logits"]  # (slices, num_labels)
        if function_to_apply == "softmax":
            slice_scores = logits.softmax(dim=-1)
        elif function_to_apply == "sigmoid":
            slice_scores = logits.sigmoid()
        else:
            slice_scores = logits
        if aggregation != "vote":
            vote_threshold = None
        song = aggregate_songs(slice_scores.double().numpy(), aggregation=aggregation, threshold=vote_threshold)
        order = song_ranking(song)
        # One slice: its own scores (one vote would throw its probabilities away; the ranking is the same).
        song_scores = (
            slice_scores[0].float() if slice_scores.shape[0] == 1 else torch.from_numpy(song.scores[0]).float()
        )

        def ranked(scores: torch.Tensor, label_order: list[int]) -> list[dict]:
            kept = label_order[:top_k]
            if threshold is not None:
                kept = [i for i in kept if float(scores[i]) >= threshold]
            return [{"score": float(scores[i]), "label": config.id2label[i]} for i in kept]

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


__all__ = ["SongLevelAudioClassificationPipeline"]
