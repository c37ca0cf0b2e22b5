#!/usr/bin/env python
"""Train and evaluate GenreMERT or CRNN_FGNL, plain or with learnable counterfactual attention (LCA), on GTZAN,
artist20 or the synthetic shortcut benchmark; frame- and song-level scores, confusion matrices, TensorBoard logs and
a model folder that `pipeline("audio-classification", model=<output_dir>, trust_remote_code=True)` loads.

One process (CPU or one GPU):

    python run_classification.py --model_type crnn_fgnl --dataset synthetic --counterfactual learned \
        --cf_warmup_epochs 2 --num_train_epochs 6 --output_dir outputs/crnn_lca --do_train --do_eval --do_predict

A preset (one JSON file; flags after it override its values):

    python run_classification.py configs/genremert_lca.json --data_dir /data/gtzan \
        --backbone_name_or_path m-a-p/MERT-v1-95M --output_dir outputs/genremert_lca

Several GPUs (DDP), optionally in bf16:

    accelerate launch --multi_gpu --num_processes 4 run_classification.py configs/genremert_lca.json \
        --data_dir /data/gtzan --backbone_name_or_path m-a-p/MERT-v1-95M --bf16 true --output_dir outputs/x

Two CPU processes (gloo; with accelerate 1.15, `accelerate launch --cpu --num_processes 2` starts only one):

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 run_classification.py ...

Written to `--output_dir`: the final model (`config.json` with `auto_map`, `model.safetensors`,
`preprocessor_config.json`, the code files), `all_results.json` (`{eval,test}_{frame,song}_{accuracy,f1}`, ...),
`confusion_matrix_<split>_{frame,song}.{png,json}`, `classification_report_<split>.json`, `checkpoint-*/` and
TensorBoard logs under `runs/`. See docs/training.md.

A mistake in the flags, the files or the data is reported as one line `error: <message>` with exit status 2 (a
misspelt `--dataset` before torch is even imported); any other exception is a bug and keeps its traceback.
"""

import difflib
import json
import sys


# The choices of --dataset, as genremert.training.arguments.DATASETS (tests/test_newcomer_errors.py keeps the two
# equal): checked before torch and transformers are imported, so a misspelt name is refused at once.
DATASETS = ("gtzan", "artist20", "magnatagatune", "mtg_jamendo", "fma", "synthetic", "custom")


def dataset_flag_problem(argv: list[str]) -> str | None:
    """Why the `--dataset` of `argv` (the last one given, or the preset's) is not a dataset, or None. Everything else
    is left to the full parser."""
    value = None
    if argv and argv[0].endswith(".json"):
        try:
            with open(argv[0], encoding="utf-8") as handle:
                preset = json.load(handle)
        except (OSError, ValueError):
            preset = None  # the full parser names a missing or broken preset
        if isinstance(preset, dict) and preset.get("dataset") is not None:
            value = str(preset["dataset"])
    for position, argument in enumerate(argv):
        if argument == "--dataset" and position + 1 < len(argv):
            value = argv[position + 1]
        elif argument.startswith("--dataset="):
            value = argument.split("=", 1)[1]
    if value is None or value in DATASETS:
        return None
    close = difflib.get_close_matches(value, DATASETS, n=1)
    return (
        f"--dataset {value!r} is not a dataset: expected one of {', '.join(DATASETS)}"
        + (f" (did you mean {close[0]}?)." if close else ".")
        + " Your own data: --dataset_name <Hub id or folder>."
    )


def cli(argv: list[str] | None = None) -> int:
    """The script: quick checks first, then `genremert.training.run.script_main` (user errors as one line, status 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    problem = dataset_flag_problem(argv)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from genremert.training.run import script_main

    return script_main(argv)


if __name__ == "__main__":
    sys.exit(cli())
