"""A web page for a trained genremert model: drop or record a song, see the song answer and why.

```bash
python app.py --model outputs/genremert_lca                       # a training output or a hub_upload.py export
python app.py --model user/genremert-lca-gtzan --port 7861        # a Hub model id
python app.py --model other/folder --trust_remote_code            # a folder whose config needs its own code
```

The page (Gradio) shows, for the recording it is given:

- the song answer of the song-level pipeline (`genremert-audio-classification`, `pipeline_genremert.py`): the
  recording is cut into the model's training slices and the slices' probabilities are combined by the rule the
  config saves (majority vote, optionally of the slices more confident than `vote_threshold`, or the mean
  probability). The page states which rule answered; nothing here slices, decodes or votes on its own;
- every slice's probabilities and vote over time (a heat map and a table): which slices voted for what;
- the main branch's attention over time drawn on the waveform, one curve per slice (GenreMERT's time attention, the
  tagger's classification-token attention of the last layer averaged over the heads, CRNN_FGNL's time attention).
  CRNN_FGNL's default main attention mixes the FGNL channel rolls (MoSE) and has no time axis: its roll weights are
  drawn per slice instead. The maps come from `attention_maps.attention_maps` and `tagger_maps.tag_attention_maps`,
  computed on the very slices the pipeline classified.

Loading follows the library's trust rule (`genremert.registry.load_pretrained`): the three model types are
registered and never run a folder's code; anything else runs it only with `--trust_remote_code`. Weights load from
safetensors only. `hub_upload.py --space DIR` copies this module (with the few it imports) into a Hugging Face Space.
"""

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_genremert import aggregate_songs, cut_slices

from ..publishing.model_card import song_rule_text
from ..registry import SONG_PIPELINE_TASK, load_pretrained
from .attention_maps import _model_kind, attention_maps
from .tagger_maps import tag_attention_maps


DEFAULT_PORT = 7860  # Gradio's own default, and the port a Hugging Face Space expects
ANSWER_ELEMENT_ID = "song-answer"  # the HTML id of the answer text (what a browser test reads)
AUDIO_ELEMENT_ID = "song-input"
FIGURE_ELEMENT_ID = "song-figure"
IDLE_TEXT = "Drop an audio file or record a song: the answer appears here."
SLICE_COLUMNS = ["slice", "start (s)", "end (s)", "top label", "top probability", "vote"]
MAX_PLOTTED_LABELS = 12  # a tagger's 50 tags would make the heat map unreadable: the song's best ones are drawn
MAX_SLICE_TICKS = 12  # slice-start labels on the time axis of the heat maps (an hour of 10 s slices has 360)
WAVEFORM_PLOT_BINS = 4000  # a long recording is drawn as its min/max envelope over this many bins


@dataclass
class SliceAnswer:
    """One slice the pipeline classified: its place in the recording, its probabilities, its vote and its attention."""

    start: float  # seconds
    end: float  # seconds (a recording shorter than one slice is zero-padded: `end` may pass its duration)
    probabilities: np.ndarray  # (num_labels,) in label-id order
    top_label: str
    voted: bool | None  # counted in the majority vote; None when the song answer is the mean probability
    attention: np.ndarray  # main attention: (steps,) over the slice's time, or (num_rolls,) for CRNN_FGNL's MoSE


@dataclass
class SongAnswer:
    """What the page shows for one recording (`classify_song`)."""

    scores: list  # the pipeline's song answer: [{"label", "score"}, ...] best first, every label
    aggregation: str  # "vote" or "mean", as the pipeline applied it
    vote_threshold: float | None  # with "vote": only slices whose top probability exceeds it voted
    rule: str  # the config's song rule in words (`publishing.model_card.song_rule_text`)
    slices: list  # [SliceAnswer, ...] in time order
    attention_axis: str  # "time" or "roll"
    label_names: list  # label-id order
    waveform: np.ndarray  # (samples,) float32 at `sampling_rate`, as the pipeline read it
    sampling_rate: int

    @property
    def label(self) -> str:
        """The song's answer: the best label."""
        return self.scores[0]["label"]

    @property
    def probabilities(self) -> np.ndarray:
        """`(slices, num_labels)`: every slice's probabilities."""
        return np.stack([slice_.probabilities for slice_ in self.slices])

    def how_answered(self) -> str:
        """The rule that produced this answer, in words: what the page says next to the answer."""
        count = len(self.slices)
        if count == 1:
            return "one slice: the answer is its own probabilities (a single vote would throw them away)"
        if self.aggregation == "mean":
            return f"mean probability of {count} slices"
        voters = sum(bool(slice_.voted) for slice_ in self.slices)
        if self.vote_threshold is None:
            return f"majority vote of {count} slices"
        if voters == count:
            return f"majority vote of {count} slices (every slice above the vote threshold {self.vote_threshold:g})"
        return (
            f"majority vote of the {voters} of {count} slices whose top probability exceeds the vote threshold "
            f"{self.vote_threshold:g}"
        )

    def summary_markdown(self) -> str:
        best = self.scores[0]
        measure = "of the votes" if self.aggregation == "vote" and len(self.slices) > 1 else "probability"
        runners = ", ".join(f"{entry['label']} {entry['score']:.2f}" for entry in self.scores[1:4])
        return (
            f"### {best['label']}\n\n"
            f"**{best['score']:.2f}** {measure} — song answer by **{self.how_answered()}**.  \n"
            f"Then: {runners or '—'}.  \n"
            f"The model's rule: {self.rule}."
        )

    def slice_rows(self) -> list:
        """One row per slice, `SLICE_COLUMNS`."""
        rows = []
        for index, slice_ in enumerate(self.slices):
            vote = "mean" if slice_.voted is None else ("yes" if slice_.voted else "no (below threshold)")
            top = float(slice_.probabilities.max())
            rows.append(
                [index + 1, round(slice_.start, 3), round(slice_.end, 3), slice_.top_label, round(top, 4), vote]
            )
        return rows


# ----------------------------------------------------------------------------------------------------------------------
# Loading and classifying
# ----------------------------------------------------------------------------------------------------------------------


def load_song_classifier(source, trust_remote_code: bool = False, flag: str = "--model"):
    """The song-level pipeline (task `genremert-audio-classification`) of a trained model folder or Hub model id,
    model in eval mode. Weights load from safetensors only; the source's own code runs only with `trust_remote_code`
    (our three model types never need it). Anything but a genremert model is refused naming the flag."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline

    from modeling_lca_genremert import build_feature_extractor

    source = os.fspath(source)
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(f"{flag} {source} is a file; expected a model folder holding config.json.")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{flag} {source} has no config.json: expected a training output of run_classification.py or a "
                "hub_upload.py export."
            )
        source = str(path)
    elif source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise FileNotFoundError(f"{flag} {source}: no such folder, and not a Hub model id ('user_or_org/name').")
    model = load_pretrained(
        AutoModelForAudioClassification, source, trust_remote_code=trust_remote_code, flag=flag, use_safetensors=True
    )
    try:  # the attention maps exist for the three genremert models only
        _model_kind(model)
    except TypeError as error:
        raise TypeError(f"{flag} {source}: {error}") from error
    try:
        feature_extractor = load_pretrained(
            AutoFeatureExtractor, source, trust_remote_code=trust_remote_code, flag=flag
        )
    except OSError:  # a folder saved without preprocessor_config.json: the extractor every model folder would carry
        feature_extractor = build_feature_extractor(model.config)
    return pipeline(SONG_PIPELINE_TASK, model=model.eval(), feature_extractor=feature_extractor)


def main_attention(model, waveform, seed: int = 0) -> tuple[np.ndarray, str]:
    """The main branch's attention on one slice `(samples,)` and its axis: `(steps,)` and `"time"` (GenreMERT, the
    tagger — last layer's classification-token row averaged over the heads —, CRNN_FGNL with
    `counterfactual_attention="time"`), or `(num_rolls,)` and `"roll"` (CRNN_FGNL's MoSE roll weights)."""
    kind = _model_kind(model)
    if kind == "self_attention_tagger":
        layers = tag_attention_maps(model, waveform, seed=seed)["layers"]  # (layers, heads, steps)
        return layers[-1].mean(0), "time"  # (steps,): the attention LCA counterfactualises
    weights = attention_maps(model, waveform, seed=seed)["attention"]  # (frames,) or (num_rolls,)
    over_time = kind == "genremert" or getattr(model.config, "counterfactual_attention", "mose") == "time"
    return weights, "time" if over_time else "roll"


def classify_song(classifier, audio, seed: int = 0) -> SongAnswer:
    """Classify one recording (a file path, file bytes, or what the pipeline accepts) with the song-level pipeline
    `classifier` (`load_song_classifier`), and compute the main attention of every slice it classified.

    The recording is decoded once (`classifier.load_waveform`, the pipeline's own decoding and resampling); the
    pipeline slices and answers it (`return_slices=True`); the same slices are cut again from its slice starts
    (`audio_genremert.cut_slices`) for the attention maps. Which slices voted follows `audio_genremert.aggregate_songs`,
    the rule the pipeline applied."""
    model = classifier.model
    config = model.config
    sampling_rate = classifier.sampling_rate
    waveform = classifier.load_waveform(audio)  # (samples,) float32 at the model's rate
    result = classifier(waveform, top_k=None, return_slices=True)
    label_names = [config.id2label[index] for index in range(config.num_labels)]
    label_index = {name: index for index, name in enumerate(label_names)}

    probabilities = np.zeros((len(result["slices"]), len(label_names)))  # (slices, num_labels)
    for row, slice_ in enumerate(result["slices"]):
        for entry in slice_["scores"]:
            probabilities[row, label_index[entry["label"]]] = entry["score"]
    aggregation = result["aggregation"]
    threshold = getattr(config, "vote_threshold", None) if aggregation == "vote" else None
    voted = [None] * len(probabilities)
    if aggregation == "vote":
        # Each slice as its own "song": it falls back exactly when it does not pass the threshold; when no slice of
        # the song passes, every slice votes (the song itself falls back).
        alone = aggregate_songs(probabilities, np.arange(len(probabilities)), aggregation="vote", threshold=threshold)
        song = aggregate_songs(probabilities, aggregation="vote", threshold=threshold)
        voted = [True] * len(probabilities) if song.fell_back[0] else [not bool(x) for x in alone.fell_back]

    starts = [int(round(slice_["start"] * sampling_rate)) for slice_ in result["slices"]]
    segments = cut_slices(waveform, starts, classifier.slice_samples)  # (slices, slice_samples)
    slices, axis = [], "time"
    for row, (slice_, segment) in enumerate(zip(result["slices"], segments)):
        attention, axis = main_attention(model, segment, seed=seed)
        slices.append(
            SliceAnswer(
                start=float(slice_["start"]),
                end=float(slice_["end"]),
                probabilities=probabilities[row],
                top_label=slice_["scores"][0]["label"],
                voted=voted[row],
                attention=np.asarray(attention, dtype=np.float32),
            )
        )
    return SongAnswer(
        scores=result["scores"],
        aggregation=aggregation,
        vote_threshold=threshold,
        rule=song_rule_text(config),
        slices=slices,
        attention_axis=axis,
        label_names=label_names,
        waveform=waveform,
        sampling_rate=sampling_rate,
    )


# ----------------------------------------------------------------------------------------------------------------------
# The figure
# ----------------------------------------------------------------------------------------------------------------------


def _envelope(waveform: np.ndarray, sampling_rate: int, bins: int = WAVEFORM_PLOT_BINS):
    """`(times, low, high)`: the waveform's min/max per bin, so that an hour of audio draws as fast as a second."""
    per_bin = max(1, len(waveform) // bins)
    usable = len(waveform) // per_bin * per_bin
    blocks = waveform[:usable].reshape(-1, per_bin)  # (bins, per_bin)
    times = (np.arange(len(blocks)) + 0.5) * per_bin / sampling_rate
    return times, blocks.min(axis=1), blocks.max(axis=1)


def draw_song(answer: SongAnswer):
    """A matplotlib `Figure` (no pyplot state): the waveform with the main attention of every slice over it (or the
    roll weights per slice), and the slices' probabilities over time with each slice's vote marked."""
    from matplotlib.figure import Figure

    rolls = answer.attention_axis == "roll"
    figure = Figure(figsize=(10.0, 8.0 if rolls else 6.5), dpi=100, layout="constrained")
    axes = figure.subplots(3 if rolls else 2, 1, height_ratios=[1.2, 1.5, 1.0] if rolls else [1.2, 1.5])
    wave_axis, probability_axis = axes[0], axes[1]
    duration = len(answer.waveform) / answer.sampling_rate
    times, low, high = _envelope(answer.waveform, answer.sampling_rate)
    wave_axis.fill_between(times, low, high, color="0.65", linewidth=0)
    wave_axis.set_xlim(0, max(duration, answer.slices[-1].end))
    wave_axis.set_ylabel("amplitude")
    wave_axis.set_xlabel("time (s)")
    for slice_ in answer.slices if len(answer.slices) <= MAX_SLICE_TICKS * 4 else ():  # boundaries, while visible
        wave_axis.axvline(slice_.start, color="0.3", linestyle=":", linewidth=0.8)
    covered = max(slice_.end for slice_ in answer.slices)
    if covered < duration:  # slice_remainder="drop": the tail shorter than a hop is in no slice
        wave_axis.axvspan(covered, duration, color="0.85", zorder=0)
        wave_axis.text(covered, high.max(), " in no slice", va="top", fontsize=8, color="0.3")
    if rolls:
        wave_axis.set_title("waveform and slices (this model's main attention mixes FGNL channel rolls: no time axis)")
    else:
        wave_axis.set_title("main attention over time (× number of steps: 1 = uniform), one curve per slice")
        attention_axis = wave_axis.twinx()
        for slice_ in answer.slices:
            steps = len(slice_.attention)
            step_times = slice_.start + (np.arange(steps) + 0.5) * (slice_.end - slice_.start) / steps
            inside = step_times <= duration  # the zero padding of a short recording is not drawn
            attention_axis.plot(step_times[inside], steps * slice_.attention[inside], color="tab:blue", linewidth=1.2)
        attention_axis.axhline(1.0, color="tab:blue", linestyle="--", linewidth=0.6, alpha=0.6)
        attention_axis.set_ylabel("attention (× uniform)", color="tab:blue")
        attention_axis.set_ylim(bottom=0)

    probabilities = answer.probabilities  # (slices, num_labels)
    order = [answer.label_names.index(entry["label"]) for entry in answer.scores][:MAX_PLOTTED_LABELS]
    image = probability_axis.imshow(
        probabilities[:, order].T,
        aspect="auto",
        origin="upper",
        cmap="viridis",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    probability_axis.set_yticks(range(len(order)), [answer.label_names[index] for index in order])
    ticks = np.unique(np.linspace(0, len(answer.slices) - 1, min(len(answer.slices), MAX_SLICE_TICKS)).round())
    tick_labels = [f"{answer.slices[int(tick)].start:g}" for tick in ticks]
    probability_axis.set_xticks(ticks, tick_labels)
    probability_axis.set_xlabel("slice start (s)")
    marker_size = min(60.0, 1800.0 / len(answer.slices))  # dots of neighbouring slices must not overlap
    for column, slice_ in enumerate(answer.slices):
        top = int(np.argmax(slice_.probabilities))
        if top in order:
            hollow = slice_.voted is False  # below the vote threshold: the slice did not vote
            probability_axis.scatter(
                column, order.index(top), s=marker_size, facecolors="none" if hollow else "white", edgecolors="red"
            )
    probability_axis.set_title("slice probabilities; dot: the slice's top label (hollow: below the vote threshold)")
    figure.colorbar(image, ax=probability_axis, fraction=0.03, pad=0.01, label="probability")
    if rolls:
        weights = np.stack([slice_.attention for slice_ in answer.slices]).T  # (num_rolls, slices)
        roll_image = axes[2].imshow(weights, aspect="auto", origin="upper", cmap="magma", interpolation="nearest")
        axes[2].set_yticks(range(len(weights)), [f"roll {k}" for k in range(len(weights))])
        axes[2].set_xticks(ticks, tick_labels)
        axes[2].set_xlabel("slice start (s)")
        axes[2].set_title("main attention: MoSE roll weights per slice")
        figure.colorbar(roll_image, ax=axes[2], fraction=0.03, pad=0.01, label="weight")
    return figure


# ----------------------------------------------------------------------------------------------------------------------
# The page and its command line
# ----------------------------------------------------------------------------------------------------------------------


def _header(classifier, model_name: str | None) -> str:
    config = classifier.model.config
    labels = ", ".join(config.id2label[index] for index in range(config.num_labels))
    task = "tags" if config.problem_type == "multi_label_classification" else "labels"
    return (
        f"## {model_name or type(classifier.model).__name__}\n\n"
        f"{type(classifier.model).__name__} · {config.sampling_rate} Hz · {task}: {labels}.  \n"
        f"Song answer: {song_rule_text(config)}."
    )


def build_interface(classifier, model_name: str | None = None, seed: int = 0):
    """The Gradio page (`gradio.Blocks`) of the song-level pipeline `classifier`; call `.launch()` on it."""
    import gradio as gr

    def respond(audio_path):
        if audio_path is None:
            return IDLE_TEXT, None, None, []
        try:
            answer = classify_song(classifier, audio_path, seed=seed)
        except (ValueError, TypeError, OSError) as error:  # bad or unreadable audio: said on the page, not a crash
            return f"**This recording could not be classified.** {error}", None, None, []
        scores = {entry["label"]: entry["score"] for entry in answer.scores}
        return answer.summary_markdown(), scores, draw_song(answer), answer.slice_rows()

    with gr.Blocks(title=f"genremert — {model_name or type(classifier.model).__name__}") as demo:
        gr.Markdown(_header(classifier, model_name))
        with gr.Row():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Song", elem_id=AUDIO_ELEMENT_ID)
            with gr.Column():
                answer_text = gr.Markdown(IDLE_TEXT, elem_id=ANSWER_ELEMENT_ID)
                song_scores = gr.Label(label="Song scores", num_top_classes=5)
        figure = gr.Plot(label="Attention and slice votes over time", show_label=False, elem_id=FIGURE_ELEMENT_ID)
        table = gr.Dataframe(headers=SLICE_COLUMNS, label="Slices", interactive=False)
        audio.change(respond, inputs=audio, outputs=[answer_text, song_scores, figure, table])
    return demo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", required=True, help="A trained model folder (run_classification.py, hub_upload.py) or Hub model id."
    )
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Run the Python code shipped with --model when its config needs it (never needed by genremert's models).",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"Port to serve on (default {DEFAULT_PORT}).")
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to serve on (default 127.0.0.1; 0.0.0.0 serves the network)."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the attention passes (default 0).")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535, got {args.port}.")
    try:
        classifier = load_song_classifier(args.model, trust_remote_code=args.trust_remote_code)
    except (OSError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    demo = build_interface(classifier, model_name=args.model, seed=args.seed)
    demo.launch(server_name=args.host, server_port=args.port)
    return 0


__all__ = ["SongAnswer", "build_interface", "classify_song", "draw_song", "load_song_classifier", "main_attention"]
