"""Command line of `interpret.py`: every plot that applies to a trained model, plus `interpretation.json`."""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from .attention_maps import (
    DEFAULT_BIAS_BAND_HZ,
    DEFAULT_NOISE_DB,
    _has_counterfactual_branch,
    _label_name,
    _model_kind,
    _slice_waveform,
    collect_representations,
    plot_grad_cam,
    plot_roll_attention,
    plot_time_attention,
    plot_tsne,
)
from .bias_probe import add_band_noise, bias_probe, branch_accuracy, plot_bias_probe
from .tagger_maps import plot_tag_attention


def load_model(model_dir, trust_remote_code: bool = False):
    """A genremert model folder (training output or export), from safetensors only, in eval mode. The folder's own
    code files run only with `trust_remote_code` (our model types never need them)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"--model_dir {model_dir} has no config.json: expected a genremert model folder.")
    from transformers import AutoModelForAudioClassification

    from ..registry import load_pretrained

    model = load_pretrained(
        AutoModelForAudioClassification,
        model_dir,
        trust_remote_code=trust_remote_code,
        flag="--model_dir",
        use_safetensors=True,
    )
    _model_kind(model)
    return model.eval()


def _load_slices(args, model):
    """The test slices (and, for the synthetic benchmark, the noisy test slices) at the model's rate and slice length."""
    from ..data.audio_files import slice_songs
    from ..data.corpora import load_artist20, load_gtzan
    from ..data.magnatagatune import load_magnatagatune
    from ..data.synthetic import load_synthetic, synthetic_metadata

    if args.dataset == "synthetic":
        try:
            kwargs = json.loads(args.synthetic_options) if args.synthetic_options else {}
        except json.JSONDecodeError as error:
            raise ValueError(f"--synthetic_options is not valid JSON ({error}): {args.synthetic_options!r}") from error
        if not isinstance(kwargs, dict):
            raise ValueError(f"--synthetic_options must be a JSON object of load_synthetic arguments, got {kwargs!r}.")
        if args.bias_class is not None:
            kwargs["bias_class"] = args.bias_class
        if args.split:
            kwargs["split"] = args.split
        if args.data_dir:
            kwargs["cache_dir"] = args.data_dir
        songs = load_synthetic(**kwargs)
        if args.bias_class is None:  # the probe follows the benchmark's own biased class
            args.bias_class = synthetic_metadata(songs)["bias_class"]
    elif args.dataset == "custom":  # your own data: the training run's loader arguments and its saved split
        from ..training.arguments import DataTrainingArguments
        from ..training.preparation import load_songs

        names = {field.name for field in dataclasses.fields(DataTrainingArguments)}
        data_args = DataTrainingArguments(**{k: v for k, v in args.run_data_args.items() if k in names})
        songs = load_songs(data_args, data_args.split_seed, args.model_dir)
    elif args.dataset == "gtzan":
        songs = load_gtzan(args.data_dir, **({"split": args.split} if args.split else {}))
    elif args.dataset == "magnatagatune":
        songs = load_magnatagatune(args.data_dir, **({"split": args.split} if args.split else {}))
    else:
        songs = load_artist20(args.data_dir, **({"split": args.split} if args.split else {}))
    if args.eval_split not in songs:
        raise ValueError(
            f"--eval_split {args.eval_split!r} is not in the {args.dataset} dataset (splits: {list(songs)})."
        )
    label_feature = songs[args.eval_split].features["label"]
    label_names = getattr(label_feature, "feature", label_feature).names  # classes, or tags (a list of ClassLabel)
    if isinstance(args.bias_class, str):
        if args.bias_class not in label_names:
            raise ValueError(f"--bias_class {args.bias_class!r} is not a class of the dataset: {label_names}.")
        args.bias_class = label_names.index(args.bias_class)

    def sliced(split):  # the slicing of the model's song rule (its evaluation and pipeline)
        return slice_songs(
            songs[split],
            model.config.sampling_rate,
            model.config.slice_seconds,
            getattr(model.config, "slice_overlap_seconds", 0.0),
            keep_remainder=getattr(model.config, "slice_remainder", "drop") == "end",
        )

    if len(label_names) != model.config.num_labels:
        raise ValueError(
            f"The {args.dataset} dataset has {len(label_names)} classes but the model in --model_dir predicts "
            f"{model.config.num_labels}: interpret the model on the dataset it was trained on."
        )
    model_names = [_label_name(model, index) for index in range(model.config.num_labels)]
    if model_names != list(label_names):
        print(
            f"warning: the dataset's class names {list(label_names)} differ from the model's {model_names}; "
            "class ids are matched by position.",
            file=sys.stderr,
        )
    noisy = sliced("test_noisy") if args.eval_split == "test" and "test_noisy" in songs else None
    return sliced(args.eval_split), noisy, label_names


def run_interpretation(
    model,
    slices,
    label_names,
    output_dir,
    bias_class=None,
    noisy_slices=None,
    band_hz=DEFAULT_BIAS_BAND_HZ,
    noise_db=DEFAULT_NOISE_DB,
    max_slices=None,
    num_examples=1,
    seed=0,
) -> dict:
    """Write every plot that applies to `model` into `output_dir` and return the numbers (also written as
    `interpretation.json`)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    kind = _model_kind(model)
    summary = {"model_type": kind, "figures": []}
    count = len(slices) if max_slices is None else min(len(slices), max_slices)
    examples = np.linspace(0, count - 1, num=min(num_examples, count)).round().astype(int)
    multi_label = model.config.problem_type == "multi_label_classification"
    for example in examples:
        row = slices[int(example)]
        waveform = _slice_waveform(row)
        label = "+".join(label_names[int(i)] for i in row["label"]) if multi_label else label_names[int(row["label"])]
        stem = f"slice{int(example):05d}_{label or 'untagged'}"
        if kind == "self_attention_tagger":
            path = plot_tag_attention(model, waveform, output_dir / f"tag_attention_{stem}.png", seed=seed)
            summary["figures"].append(str(path))
        elif kind == "genremert":
            summary["figures"].append(
                str(plot_time_attention(model, waveform, output_dir / f"time_attention_{stem}.png", seed=seed))
            )
        else:
            summary["figures"].append(
                str(
                    plot_roll_attention(
                        model, waveform, output_dir / f"roll_attention_{stem}.png", seed=seed, band_hz=band_hz
                    )
                )
            )
            summary["figures"].append(
                str(plot_grad_cam(model, waveform, output_dir / f"evidence_{stem}.png", band_hz=band_hz))
            )
            if bias_class is not None:
                noisy = add_band_noise(
                    waveform, model.config.sampling_rate, band_hz, noise_db, np.random.default_rng(seed)
                )
                summary["figures"].append(
                    str(plot_grad_cam(model, noisy, output_dir / f"evidence_{stem}_noisy.png", band_hz=band_hz))
                )
    if multi_label:  # tags: the heat maps; t-SNE by class, accuracy and the shortcut probe need one class per slice
        with open(output_dir / "interpretation.json", "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
        return summary
    representations, labels, predictions = collect_representations(model, slices, max_slices=max_slices)
    summary["accuracy"] = float(np.mean(labels == predictions))
    if len(labels) >= 4:
        summary["figures"].append(
            str(plot_tsne(representations, labels, label_names, output_dir / "tsne.png", seed=seed))
        )
    if _has_counterfactual_branch(model):
        summary["branch_accuracy"] = branch_accuracy(model, slices, max_slices=max_slices, seed=seed)
    if bias_class is not None:
        result = bias_probe(
            model,
            slices,
            bias_class,
            band_hz=band_hz,
            noise_db=noise_db,
            noisy_slices=noisy_slices,
            max_slices=max_slices,
            seed=seed,
        )
        summary["bias_probe"] = result.to_dict()
        summary["figures"].append(str(plot_bias_probe(result, output_dir / "bias_probe.png")))
    with open(output_dir / "interpretation.json", "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    return summary


def fill_from_run_arguments(args) -> None:
    """Unset dataset settings come from the training run's `run_args.json` in `--model_dir` (so the README's command
    works on the demo's output as it is); without that file, `--dataset` is required."""
    path = Path(args.model_dir) / "run_args.json"
    if not path.is_file():
        if args.dataset is None:
            raise ValueError(f"--dataset is required: {path} (the training run's arguments) does not exist.")
        return
    data_args = json.loads(path.read_text(encoding="utf-8")).get("data_args", {})
    args.run_data_args = data_args
    if args.dataset is not None and args.dataset != data_args.get("dataset"):
        return  # another dataset than the training run's: nothing to take from it
    args.dataset = data_args.get("dataset")
    for name in ("data_dir", "split", "synthetic_options", "bias_class"):
        if getattr(args, name) is None and data_args.get(name) is not None:
            setattr(args, name, data_args[name])
    if isinstance(args.bias_class, str):  # run_classification takes a class name or id; ids are resolved here
        args.bias_class = int(args.bias_class) if args.bias_class.isdigit() else args.bias_class


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="A genremert model folder (training output or Hub export).")
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Run Python code shipped in --model_dir (only needed for model types this library does not register).",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        choices=("synthetic", "gtzan", "artist20", "magnatagatune", "custom"),
        help="The dataset to interpret on. Default: the training run's, from --model_dir/run_args.json (with its "
        "--data_dir, --split, --synthetic_options and --bias_class, unless given here).",
    )
    parser.add_argument(
        "--data_dir", default=None, help="Dataset root (gtzan, artist20) or the synthetic cache folder."
    )
    parser.add_argument(
        "--split",
        default=None,
        help="Split scheme of the loader, as in run_classification.py (gtzan: fault_filtered, ...; "
        "artist20: album, ...). Default: the loader's.",
    )
    parser.add_argument("--eval_split", default="test", help="Which split to interpret (default: test).")
    parser.add_argument("--output_dir", required=True, help="Folder for the PNGs and interpretation.json.")
    parser.add_argument(
        "--synthetic_options",
        default=None,
        help="JSON object of load_synthetic arguments: the same as the training run's.",
    )
    parser.add_argument(
        "--bias_class",
        type=int,
        default=None,
        help="Class id whose training audio carried the band noise: runs the bias probe.",
    )
    parser.add_argument(
        "--band_hz",
        type=float,
        nargs=2,
        default=list(DEFAULT_BIAS_BAND_HZ),
        metavar=("LOW", "HIGH"),
        help="Band of the probe's white noise in Hz (default: 3000 5000, paper Fig. 1), also outlined on the plots.",
    )
    parser.add_argument(
        "--noise_db",
        type=float,
        default=DEFAULT_NOISE_DB,
        help=f"Level of the probe's noise: its RMS in dB relative to each slice's RMS (default {DEFAULT_NOISE_DB:g}).",
    )
    parser.add_argument("--max_slices", type=int, default=500, help="Slices used for t-SNE and the probe (0 = all).")
    parser.add_argument("--num_examples", type=int, default=2, help="Slices drawn as attention / Grad-CAM examples.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # The folder first: a missing one is named as such, not as a missing --dataset (as robustness.py does).
    model_dir = Path(args.model_dir)
    if not model_dir.is_dir():
        what = "is a file, not a folder" if model_dir.exists() else "does not exist"
        problem = f"{what}, so it has no config.json"
    elif not (model_dir / "config.json").is_file():
        problem = "has no config.json"
    else:
        problem = None
    if problem:
        print(
            f"error: --model_dir {args.model_dir} {problem}: expected a genremert model folder (a run_classification.py "
            "output folder or a Hub export).",
            file=sys.stderr,
        )
        return 1
    try:
        fill_from_run_arguments(args)
    except ValueError as error:
        parser.error(str(error))
    if args.dataset in ("gtzan", "artist20") and not args.data_dir:
        parser.error(f"--data_dir is required for --dataset {args.dataset}.")
    try:
        model = load_model(args.model_dir, trust_remote_code=args.trust_remote_code)
        slices, noisy_slices, label_names = _load_slices(args, model)
        summary = run_interpretation(
            model,
            slices,
            label_names,
            args.output_dir,
            bias_class=args.bias_class,
            noisy_slices=noisy_slices,
            band_hz=tuple(args.band_hz),
            noise_db=args.noise_db,
            max_slices=args.max_slices or None,
            num_examples=args.num_examples,
            seed=args.seed,
        )
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for figure in summary["figures"]:
        print(figure)
    if "bias_probe" in summary:
        probe = summary["bias_probe"]
        print(
            f"shortcut gap (clean − noisy F1) {probe['shortcut_gap']:+.3f}; slices of other classes → "
            f"{probe['bias_class_name']}: clean {probe['clean_biased_rate']:.3f}, noisy {probe['noisy_biased_rate']:.3f}"
        )
    return 0
