"""The model card (`README.md`) of a published genremert model: YAML metadata with a `model-index`, usage, the results
of the run by the rule the published pipeline applies, the training configuration and the confusion matrices."""

import math
from pathlib import Path


CARD_MARKER = "<!-- Written by genremert hub_upload.py. -->"
# Metrics of `all_results.json` that go into the card's model-index: key → (metric type, readable name).
MODEL_INDEX_METRICS = {
    "test_song_accuracy": ("accuracy", "Song-level accuracy"),
    "test_song_f1": ("f1", "Song-level F1 (weighted)"),
    "test_frame_accuracy": ("accuracy", "Frame-level accuracy"),
    "test_frame_f1": ("f1", "Frame-level F1 (weighted)"),
    "test_song_roc_auc": ("roc_auc", "Song-level ROC-AUC (macro over tags)"),
    "test_song_pr_auc": ("average_precision", "Song-level PR-AUC (macro over tags)"),
    "test_frame_roc_auc": ("roc_auc", "Frame-level ROC-AUC (macro over tags)"),
    "test_frame_pr_auc": ("average_precision", "Frame-level PR-AUC (macro over tags)"),
}
# Known Hub ids of the datasets the training script supports (artist20 is not on the Hub).
DATASET_HUB_IDS = {"gtzan": "marsyas/gtzan"}  # artist20 and the synthetic benchmark are not Hub datasets
# Columns of the card's results table: metric suffix in all_results.json (`<split>_<suffix>`) → column title.
RESULT_COLUMNS = {
    "frame_accuracy": "frame accuracy",
    "frame_f1": "frame F1",
    "song_accuracy": "song accuracy",
    "song_f1": "song F1",
    "counterfactual_frame_accuracy": "counterfactual branch, frame accuracy",
    "frame_roc_auc": "frame ROC-AUC",
    "frame_pr_auc": "frame PR-AUC",
    "song_roc_auc": "song ROC-AUC",
    "song_pr_auc": "song PR-AUC",
    "counterfactual_song_roc_auc": "counterfactual branch, song ROC-AUC",
}
RESULT_SPLITS = ("eval", "test", "test_noisy")  # rows, in this order; other `test_*` splits follow
DATASET_DISPLAY_NAMES = {
    "gtzan": "GTZAN",
    "artist20": "artist20",
    "magnatagatune": "MagnaTagATune",
    "synthetic": "synthetic shortcut benchmark",
}


def song_rule_text(config) -> str:
    """The song-level rule of `config` in words (the rule of the pipeline and of the reported song figures)."""
    overlap = getattr(config, "slice_overlap_seconds", 0.0)
    slicing = f"{config.slice_seconds:g} s slices" + (f" overlapping by {overlap:g} s" if overlap else "")
    if getattr(config, "slice_remainder", "drop") == "end":
        slicing += ", the last one aligned to the end of the recording"
    if getattr(config, "song_aggregation", "vote") == "mean":
        return f"the mean of the probabilities of {slicing}"
    threshold = getattr(config, "vote_threshold", None)
    if threshold is None:
        return f"a majority vote of {slicing}"
    return f"a majority vote of {slicing} whose top probability exceeds {threshold:g} (chosen on validation)"


def published_rule_metrics(metrics: dict, config) -> dict:
    """`metrics` with each split's song figures taken under the rule the published pipeline applies: the thresholded
    vote (`*_song_*_thresholded`) when the config saves a vote threshold, the plain vote otherwise."""
    result = dict(metrics)
    if getattr(config, "song_aggregation", "vote") != "vote" or getattr(config, "vote_threshold", None) is None:
        return result
    for key, value in metrics.items():
        if key.endswith("_thresholded"):
            result[key[: -len("_thresholded")]] = value
    return result


def _dataset_key(run_arguments: dict, dataset: str | None) -> str | None:
    if dataset:
        return dataset
    for key in ("dataset", "dataset_name"):
        if isinstance(run_arguments.get(key), str):
            return run_arguments[key]
    return None


def _base_model(config) -> str | None:
    if getattr(config, "model_type", None) != "genremert":
        return None
    backbone = config.backbone_config
    if backbone.hidden_size == 768 and backbone.num_hidden_layers == 12:
        return "m-a-p/MERT-v1-95M"
    if backbone.hidden_size == 1024 and backbone.num_hidden_layers == 24:
        return "m-a-p/MERT-v1-330M"
    return None


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"
    return str(value)


def _results_table(metrics: dict) -> list:
    """Markdown rows: one per split (eval, test, test_noisy, ...), the frame/song accuracy and F1 as columns."""
    splits = [split for split in RESULT_SPLITS if any(f"{split}_{suffix}" in metrics for suffix in RESULT_COLUMNS)]
    for key in sorted(metrics):
        for suffix in RESULT_COLUMNS:
            split = key[: -len(suffix) - 1] if key.endswith("_" + suffix) else None
            if split and split.startswith("test_") and split not in splits and not split.endswith("counterfactual"):
                splits.append(split)
    columns = [suffix for suffix in RESULT_COLUMNS if any(f"{split}_{suffix}" in metrics for split in splits)]
    if not splits:
        return []
    rows = [
        "| split | " + " | ".join(RESULT_COLUMNS[suffix] for suffix in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for split in splits:
        values = [metrics.get(f"{split}_{suffix}") for suffix in columns]
        cells = ["" if value is None else _format_value(float(value)) for value in values]
        rows.append(f"| `{split}` | " + " | ".join(cells) + " |")
    return rows


def build_model_card(
    config,
    repo_id: str,
    metrics: dict,
    run_arguments: dict,
    trained_counterfactual: str,
    num_parameters: int,
    image_files: list,
    dataset: str | None = None,
    license: str | None = None,
) -> str:
    """The model card (`README.md`) text: YAML metadata (library, pipeline tag, tags, datasets, license,
    base model, `model-index` with the run's test metrics) and a body with usage, results, the training
    configuration with the LCA weights, and the confusion-matrix images."""
    from huggingface_hub import EvalResult, ModelCardData

    model_type = config.model_type
    dataset_key = _dataset_key(run_arguments, dataset)
    dataset_id = DATASET_HUB_IDS.get(dataset_key) if dataset_key else None
    dataset_name = DATASET_DISPLAY_NAMES.get(dataset_key, dataset_key) if dataset_key else "unspecified"
    base_model = _base_model(config)
    if license is None:
        # MERT's weights are CC-BY-NC-4.0, which binds every model built on them; CRNN_FGNL is ours (MIT).
        license = "cc-by-nc-4.0" if model_type == "genremert" else "mit"
    model_name = repo_id.split("/")[-1]
    metrics = published_rule_metrics(metrics, config)

    eval_results = []
    for key, (metric_type, metric_name) in MODEL_INDEX_METRICS.items():
        if key in metrics and math.isfinite(metrics[key]):
            eval_results.append(
                EvalResult(
                    task_type="audio-classification",
                    task_name="Audio classification",
                    dataset_type=dataset_id or dataset_key or "unspecified",
                    dataset_name=dataset_name,
                    dataset_split="test",
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=float(metrics[key]),
                )
            )
    tags = ["audio-classification", "music", model_type.replace("_", "-"), "custom_code"]
    if trained_counterfactual == "learned":
        tags.append("learnable-counterfactual-attention")
    elif trained_counterfactual == "random":
        tags.append("counterfactual-attention-learning")
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="audio-classification",
        license=license,
        tags=tags,
        datasets=[dataset_id] if dataset_id else None,
        base_model=base_model,
        metrics=sorted({metric_type for metric_type, _ in MODEL_INDEX_METRICS.values()}) if eval_results else None,
        model_name=model_name,
        eval_results=eval_results or None,
    )

    architecture = {
        "genremert": "GenreMERT: a frozen MERT backbone, a learned 1×1 aggregation of all its hidden layers, "
        "time attention pooling and a small classifier",
        "crnn_fgnl": "CRNN_FGNL: a log-mel CRNN with the fully generalized non-local (FGNL) module and its "
        "MoSE roll attention (Kuo, Wei & Lin, AAAI 2021)",
    }.get(model_type, model_type)
    training_mode = {
        "learned": "with **learnable counterfactual attention (LCA)** (Lin et al., TASLP 2025)",
        "random": "with random counterfactual attention (CAL ablation, Rao et al., ICCV 2021)",
        "none": "with plain cross-entropy (no counterfactual branch)",
    }.get(trained_counterfactual, trained_counterfactual)

    lines = [CARD_MARKER, "", f"# {model_name}", ""]
    lines += [
        f"{architecture}, trained on {dataset_name} {training_mode}.",
        "The counterfactual attention branch is used only during training and was removed for this export: "
        f"the published model has **{num_parameters:,} parameters** ({num_parameters / 1e6:.2f} M) and the same "
        "inference cost as the plain model.",
        "",
        "## Usage",
        "",
        "The model code ships with the weights, so loading needs `trust_remote_code=True`. The pipeline slices a "
        f"recording into {config.slice_seconds:g} s windows at {config.sampling_rate} Hz and answers at song level.",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'classifier = pipeline("audio-classification", model="{repo_id}", trust_remote_code=True)',
        'print(classifier("song.mp3"))  # a path (wav/flac/ogg/mp3), an array at the model\'s rate, or',
        'print(classifier({"array": waveform, "sampling_rate": 44100}))  # any rate: resampled for you',
        "```",
        "",
        "Or with the model class:",
        "",
        "```python",
        "from transformers import AutoFeatureExtractor, AutoModelForAudioClassification",
        "",
        f'feature_extractor = AutoFeatureExtractor.from_pretrained("{repo_id}")',
        f'model = AutoModelForAudioClassification.from_pretrained("{repo_id}", trust_remote_code=True)',
        "```",
        "",
        "## Requirements",
        "",
        "Inference needs `torch`, `transformers` (>= 5) and `numpy`; audio files and inputs at another sampling rate "
        "also need `soundfile` and `soxr` (`pip install soundfile soxr`), and formats libsndfile cannot read (m4a, "
        "aac, ...) the `ffmpeg` binary. No torchaudio, torchcodec or scipy.",
        "",
        "## Labels",
        "",
        ", ".join(f"`{config.id2label[index]}`" for index in sorted(config.id2label)),
        "",
    ]
    results_table = _results_table(metrics)
    if results_table:
        lines += (
            ["## Results", ""]
            + results_table
            + [
                "",
                "Frame level: each slice classified on its own; song level: " + song_rule_text(config) + ", the rule "
                'that `pipeline("audio-classification")` applies to this model (saved in its config). Every score of '
                "the run is in `all_results.json`."
                + (
                    " Tags: ROC-AUC and PR-AUC (average precision) per tag, macro-averaged over the tags that have a "
                    "positive and a negative in the split; the excluded tags are named in `<split>_tag_report.json`."
                    if getattr(config, "problem_type", None) == "multi_label_classification"
                    else ""
                ),
                "",
            ]
        )
    lines += ["## Training configuration", "", "| setting | value |", "|---|---|"]
    lines.append(f"| counterfactual branch during training | `{trained_counterfactual}` |")
    source = getattr(config, "finetuned_from", None)
    if source:
        lines.append(
            f"| fine-tuned from | `{source['model']}` (`--finetune {source['finetune']}`; its labels: "
            f"{', '.join(source['labels'])}) |"
        )
    for key in ("classifier_dropout", "counterfactual_dropout", "representation_size", "slice_seconds"):
        if hasattr(config, key):
            lines.append(f"| `{key}` | {_format_value(getattr(config, key))} |")
    lca_weights = {
        key: value
        for key, value in run_arguments.items()
        if key.startswith("lambda_") or key in ("cf_warmup_epochs", "effect_type")
    }
    other_keys = (
        "dataset",
        "split",
        "slice_overlap_seconds",
        "learning_rate",
        "num_train_epochs",
        "per_device_train_batch_size",
        "seed",
        "optim",
        "lr_scheduler_type",
        "weight_decay",
        "world_size",
    )
    for key in other_keys:
        if key in run_arguments and isinstance(run_arguments[key], (int, float, str, bool)):
            lines.append(f"| `{key}` | {_format_value(run_arguments[key])} |")
    lines.append("")
    if lca_weights:
        lines += ["### LCA loss weights", "", "| weight | value |", "|---|---|"]
        for key in sorted(lca_weights):
            lines.append(f"| `{key}` | {_format_value(lca_weights[key])} |")
        lines += [
            "",
            "L = λ_ce_main·CE(y) + λ_effect·CE(y_effect) + λ_ce_cf·CE(ỹ) − λ_ent_cf·H(ỹ) − λ_att·L1(A, Ã) − "
            "λ_ent_main·H(y) (paper Eq. 1)."
            + (
                " For tags (multi-label): CE is the binary cross-entropy averaged over examples and tags, H the mean "
                "Bernoulli entropy of the tags' sigmoids, y_effect = sigmoid(y) − sigmoid(ỹ) per tag."
                if getattr(config, "problem_type", None) == "multi_label_classification"
                else ""
            ),
            "",
        ]
    elif trained_counterfactual != "none":
        lines += [
            "The LCA loss weights were not recorded in this training output (no `lambda_*` entries in run_args.json or "
            "run_results.json).",
            "",
        ]
    if image_files:
        lines += ["## Confusion matrix", ""]
        for name in image_files:
            title = Path(name).stem.replace("_", " ")
            lines += [f"![{title}]({name})", ""]
    if base_model is not None:
        lines += [
            "## License",
            "",
            f"The backbone weights are MERT's (`{base_model}`), released under CC-BY-NC-4.0; this model inherits that "
            "non-commercial licence.",
            "",
        ]
    lines += [
        "## Citation",
        "",
        "```bibtex",
        "@ARTICLE{YiXing2025TASLP,",
        "  author={Yi-Xing Lin, Jen-Chun Lin, Wen-Li Wei, and Jia-Ching Wang},",
        "  journal={IEEE Transactions on Audio, Speech and Language Processing},",
        "  title={Learnable Counterfactual Attention for Music Classification},",
        "  year={2025},",
        "  doi={10.1109/TASLPRO.2025.3527143}}",
        "```",
        "",
    ]
    return f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Export and verification
# --------------------------------------------------------------------------------------------------
