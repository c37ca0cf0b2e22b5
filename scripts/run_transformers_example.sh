#!/usr/bin/env bash
# Runs Transformers' own audio-classification example on saved genremert model folders, offline.
#
# Why: a saved genremert folder must work where any audio classifier on the Hub works, through the Auto classes and
# `--trust_remote_code` alone (no `import genremert` in the process). The fairest test is Transformers' own example
# script, unchanged: `examples/pytorch/audio-classification/run_audio_classification.py`, run with the flags of its
# README. It trains, evaluates and saves each model (GenreMERT, CRNN_FGNL, the self-attention tagger; each with
# `counterfactual="none"` and `"learned"`), then the saved output folder is loaded back with
# `pipeline("audio-classification", model=out, trust_remote_code=True)` and classifies a file.
#
# Usage:
#   scripts/run_transformers_example.sh PATH/TO/run_audio_classification.py [WORK_DIR]
#
# The example script is in the transformers source repository, not in the pip package. The version checked here is
# commit 049d2bf1220747b6d39e2a978b9f5fe0defa1dca (check_min_version("5.8.0"), `processing_class=`,
# `freeze_feature_encoder`), e.g.
#   git clone --filter=blob:none --sparse https://github.com/huggingface/transformers && cd transformers \
#     && git sparse-checkout set examples/pytorch/audio-classification && git checkout 049d2bf1220747b6d39e2a978b9f5fe0defa1dca
# or download that one file from raw.githubusercontent.com/huggingface/transformers/<commit>/examples/pytorch/...
# (the file checked had sha256 cfba72c92eb234c1dc458687e589f1347f455d7ee55436b4df216a39c4f8b7ce; it is run unchanged).
#
# Needs, besides the project (`pip install -e ".[dev]"`): `evaluate` (the script imports it) and `torchcodec`
# (`datasets` decodes its Audio column with it). On a CPU-only torch the torchcodec wheels on PyPI from 0.14 on load a
# CUDA library (libnvrtc) and fail; 0.13.0 works with torch 2.13 CPU and the system FFmpeg (5.1 here). Kept out of the
# project's own environment with a virtual environment that sees the installed packages:
#   python3 -m venv --system-site-packages /tmp/hfex_venv
#   /tmp/hfex_venv/bin/pip install evaluate && /tmp/hfex_venv/bin/pip install --no-deps torchcodec==0.13.0
#   PYTHON=/tmp/hfex_venv/bin/python scripts/run_transformers_example.sh /path/to/run_audio_classification.py
#
# Offline: nothing is downloaded. The dataset is a local audiofolder written here (train/ and validation/, one folder
# per label, 1.5 s wav files at 16 kHz; `datasets` resamples to each model's rate). `evaluate.load("accuracy")` takes
# ./accuracy/accuracy.py in the working directory before the Hub (evaluate's `evaluation_module_factory`), so the
# script runs in WORK_DIR/run, where a copy of evaluate's accuracy metric is written.
#
# The README's flags, spelled for Transformers 5.x: `--warmup_ratio 0.1` is `--warmup_steps 0.1` (a float below 1 is
# a ratio), `--evaluation_strategy` is `--eval_strategy`, `--overwrite_output_dir` is gone (every run gets a fresh
# folder); `--fp16` and `--push_to_hub` are left out (CPU, offline); epochs and batch sizes are shrunk.
#
# Environment: PYTHON (default python3); MODELS (default "genremert crnn_fgnl tagger crnn_fgnl_default": the three
# tiny models of tests/tiny_configs.py, and CRNN_FGNL at its default size); COUNTERFACTUALS (default "none learned");
# LEARNING_RATE (default 3e-5, the README's: too small to move accuracy in 12 steps) and EPOCHS (default 2).
# The default set takes about 7 minutes on two busy cores (8 runs of about 25 s start-up + a few s of training each).
# Exit status: 0 when every run trained, evaluated, saved and classified a file; 1 otherwise (the failing logs named).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 PATH/TO/run_audio_classification.py [WORK_DIR]" >&2
    exit 2
fi
EXAMPLE_SCRIPT=$(realpath "$1")
if [[ ! -f "$EXAMPLE_SCRIPT" ]]; then
    echo "error: the example script '$1' does not exist; expected Transformers'" \
        "examples/pytorch/audio-classification/run_audio_classification.py (see the header of $0)." >&2
    exit 2
fi
REPO=$(realpath "$(dirname "${BASH_SOURCE[0]}")/..")
WORK_DIR=$(realpath -m "${2:-$(mktemp -d -t genremert-hf-example-XXXXXX)}")
PYTHON=${PYTHON:-python3}
MODELS=${MODELS:-"genremert crnn_fgnl tagger crnn_fgnl_default"}
COUNTERFACTUALS=${COUNTERFACTUALS:-"none learned"}
LEARNING_RATE=${LEARNING_RATE:-3e-5}  # the README's
EPOCHS=${EPOCHS:-2}  # two, so that --load_best_model_at_end chooses between two checkpoints

if [[ -e "$WORK_DIR/out" ]]; then
    echo "error: WORK_DIR '$WORK_DIR' already holds an out/ folder of an earlier check; give a new WORK_DIR." >&2
    exit 2
fi
mkdir -p "$WORK_DIR"/{data,models,run/accuracy,out,logs,hf}

# nothing from the Hub; modules of remote code go to a private cache; one thread (a shared machine)
export HF_HOME="$WORK_DIR/hf" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0

echo "example script: $EXAMPLE_SCRIPT (sha256 $(sha256sum "$EXAMPLE_SCRIPT" | cut -c1-16)...)"
echo "genremert checkout: $REPO"
echo "work dir: $WORK_DIR"

"$PYTHON" - <<'EOF'
import importlib.util, sys

missing = [name for name in ("evaluate", "torchcodec") if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"error: {sys.executable} lacks {missing}; the example script needs evaluate, and datasets decodes audio "
             "with torchcodec (see the header of scripts/run_transformers_example.sh for the install lines).")
try:
    from torchcodec.decoders import AudioDecoder  # noqa: F401  (loads the FFmpeg / torch ops libraries)
except Exception as error:  # an OSError naming the missing shared library
    sys.exit(f"error: torchcodec does not load with this torch ({error!s:.300}); on a CPU-only torch 2.13, "
             "`pip install --no-deps torchcodec==0.13.0`.")
import datasets, evaluate, torch, torchcodec, transformers
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"datasets {datasets.__version__}, evaluate {evaluate.__version__}, torchcodec {torchcodec.__version__}")
EOF

# --- the dataset: three labels told apart by pitch, 1.5 s clips, so training crops to --max_length_seconds 1 ---
"$PYTHON" - "$WORK_DIR/data" <<'EOF'
import os, sys

import numpy as np
import soundfile as sf

root = sys.argv[1]
rng = np.random.default_rng(0)
sampling_rate = 16000
pitches = {"low": 220.0, "mid": 880.0, "high": 3520.0}  # Hz
for split, per_label in (("train", 8), ("validation", 3)):
    for label, pitch in pitches.items():
        os.makedirs(f"{root}/{split}/{label}", exist_ok=True)
        for index in range(per_label):
            time = np.arange(int(1.5 * sampling_rate)) / sampling_rate  # (samples,)
            detuned = pitch * (1 + 0.02 * rng.standard_normal())
            wave = 0.3 * np.sin(2 * np.pi * detuned * time) + 0.05 * rng.standard_normal(time.size)
            sf.write(f"{root}/{split}/{label}/{label}_{index}.wav", wave.astype(np.float32), sampling_rate,
                     subtype="PCM_16")
print(f"dataset: {root} (train 24 clips, validation 9 clips, labels {sorted(pitches)})")
EOF

# --- evaluate's `accuracy` metric (huggingface/evaluate metrics/accuracy/accuracy.py, Apache-2.0), local ---
cat > "$WORK_DIR/run/accuracy/accuracy.py" <<'EOF'
# Copy of huggingface/evaluate metrics/accuracy/accuracy.py (Apache-2.0), docstrings shortened, so that
# `evaluate.load("accuracy")` resolves offline from ./accuracy/accuracy.py.
"""Accuracy metric."""

import datasets
from sklearn.metrics import accuracy_score

import evaluate


_DESCRIPTION = """
Accuracy is the proportion of correct predictions among the total number of cases processed. It can be computed with:
Accuracy = (TP + TN) / (TP + TN + FP + FN)
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted labels.
    references (`list` of `int`): Ground truth labels.
    normalize (`boolean`): If set to False, returns the number of correctly classified samples. Otherwise, returns
        the fraction of correctly classified samples. Defaults to True.
    sample_weight (`list` of `float`): Sample weights Defaults to None.
Returns:
    accuracy (`float` or `int`): Accuracy score.
"""

_CITATION = "Pedregosa et al., Scikit-learn: Machine Learning in Python, JMLR 12, pp. 2825-2830, 2011."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
                if self.config_name == "multilabel"
                else {
                    "predictions": datasets.Value("int32"),
                    "references": datasets.Value("int32"),
                }
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        return {
            "accuracy": float(
                accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
            )
        }
EOF

# --- the saved model folders, written by this checkout (the process that trains never imports genremert) ---
"$PYTHON" - "$REPO" "$WORK_DIR/models" "$MODELS" "$COUNTERFACTUALS" <<'EOF'
import sys

repo, out, model_names, counterfactuals = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
sys.path[:0] = [repo, f"{repo}/tests"]
import torch
from transformers.utils import logging

from configuration_genremert import CRNNFGNLConfig
from modeling_crnn_fgnl import CRNNFGNLForAudioClassification
from modeling_genremert import GenreMERTForAudioClassification
from modeling_self_attention_tagger import SelfAttentionTaggerForAudioClassification
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config, tiny_self_attention_tagger_config

logging.disable_progress_bar()
builders = {
    "genremert": (GenreMERTForAudioClassification, tiny_genremert_config),
    "crnn_fgnl": (CRNNFGNLForAudioClassification, tiny_crnn_fgnl_config),
    # the tagger is a multi-label tagger by default (MTAT); genre classes (class ids, softmax) are its single-label
    # problem type, which a folder must carry: the example script never sets `problem_type`
    "tagger": (
        SelfAttentionTaggerForAudioClassification,
        lambda **kw: tiny_self_attention_tagger_config(problem_type="single_label_classification", **kw),
    ),
    "crnn_fgnl_default": (CRNNFGNLForAudioClassification, lambda **kw: CRNNFGNLConfig(num_labels=3, **kw)),
}
unknown = sorted(set(model_names) - set(builders))
if unknown:
    sys.exit(f"error: MODELS names {unknown}; expected some of {sorted(builders)}.")
for name in model_names:
    model_class, make_config = builders[name]
    for counterfactual in counterfactuals:
        torch.manual_seed(0)
        model = model_class(make_config(counterfactual=counterfactual))
        model.save_pretrained(f"{out}/{name}-{counterfactual}")
        size = sum(parameter.numel() for parameter in model.parameters())
        print(f"model: {out}/{name}-{counterfactual} ({model_class.__name__}, {size} parameters, "
              f"{model.config.sampling_rate} Hz, slice {model.config.slice_seconds} s)")
EOF

# --- the runs: the README's flags (see the header for the 5.x spellings) ---
failed=()
cd "$WORK_DIR/run"
for model_name in $MODELS; do
    for counterfactual in $COUNTERFACTUALS; do
        name="$model_name-$counterfactual"
        output_dir="$WORK_DIR/out/$name"
        log="$WORK_DIR/logs/$name.log"
        command=("$PYTHON" "$EXAMPLE_SCRIPT"
            --model_name_or_path "$WORK_DIR/models/$name"
            --dataset_name "$WORK_DIR/data"
            --output_dir "$output_dir"
            --remove_unused_columns False
            --do_train --do_eval
            --learning_rate "$LEARNING_RATE"
            --max_length_seconds 1
            --attention_mask False
            --warmup_steps 0.1
            --num_train_epochs "$EPOCHS"
            --per_device_train_batch_size 4
            --gradient_accumulation_steps 1
            --per_device_eval_batch_size 4
            --dataloader_num_workers 0
            --logging_strategy steps --logging_steps 2
            --eval_strategy epoch --save_strategy epoch
            --load_best_model_at_end True --metric_for_best_model accuracy
            --save_total_limit 3
            --seed 0
            --trust_remote_code)
        echo
        echo "=== $name: $(printf '%q ' "${command[@]}")"
        start=$SECONDS
        if ! "${command[@]}" >"$log" 2>&1; then
            echo "FAILED ($((SECONDS - start)) s); the last lines of $log:"
            tail -n 30 "$log"
            failed+=("$name")
            continue
        fi
        echo "trained and evaluated in $((SECONDS - start)) s; $log ends:"
        sed -n '/\*\*\*\*\* train metrics/,/train_steps_per_second/p;/\*\*\*\*\* eval metrics/,/eval_steps_per_second/p' "$log"
        echo "saved: $(cd "$output_dir" && ls | tr '\n' ' ')"

        # --- the saved output folder back through the Hub path (pipeline + remote code, in a fresh process), and what
        # training did to the weights: the feature encoder frozen by the script's default --freeze_feature_encoder
        # True is unchanged, the rest has moved ---
        if ! "$PYTHON" - "$WORK_DIR/models/$name" "$output_dir" "$WORK_DIR/data/validation/high/high_0.wav" \
            "$counterfactual" <<'EOF'
import json, sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForAudioClassification, pipeline
from transformers.utils import logging

initial_dir, output_dir, audio_file, counterfactual = sys.argv[1:]
logging.set_verbosity_error()
logging.disable_progress_bar()
classifier = pipeline("audio-classification", model=output_dir, trust_remote_code=True)
answer = classifier(audio_file)
config = classifier.model.config
labels = sorted(config.id2label.values())
if labels != ["high", "low", "mid"] or sorted(item["label"] for item in answer) != labels:
    sys.exit(f"error: the saved labels are {labels} and the pipeline answered {answer}; expected high/low/mid.")
if config.counterfactual != counterfactual:
    sys.exit(f"error: the saved config has counterfactual={config.counterfactual!r}, expected {counterfactual!r}.")

model = AutoModelForAudioClassification.from_pretrained(initial_dir, trust_remote_code=True)
model.freeze_feature_encoder()
parameter_names = {name for name, _ in model.named_parameters()}
frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
initial, trained = load_file(f"{initial_dir}/model.safetensors"), load_file(f"{output_dir}/model.safetensors")
if set(initial) != set(trained):
    sys.exit(f"error: the saved weights differ in names: {sorted(set(initial) ^ set(trained))}.")
moved = {name for name in initial if not torch.equal(initial[name], trained[name])}
if not frozen or frozen & moved:
    sys.exit(f"error: freeze_feature_encoder froze {len(frozen)} parameters; of them moved: {sorted(frozen & moved)}.")
trainable_moved = (moved & parameter_names) - frozen
if not trainable_moved:
    sys.exit("error: no trainable parameter moved during training.")
branch = {name for name in parameter_names if name.startswith("counterfactual_branch.")}
if (counterfactual == "none") != (not branch):
    sys.exit(f"error: counterfactual={counterfactual!r} but the saved weights hold {len(branch)} branch parameters.")
metrics = json.load(open(f"{output_dir}/all_results.json"))
print(f"pipeline: {type(classifier).__name__} from {type(classifier.model).__module__}")
print(f"  {audio_file.split('/')[-1]} -> {[(item['label'], round(item['score'], 4)) for item in answer]}")
buffers_moved = sorted(moved - parameter_names)  # e.g. BatchNorm running statistics, updated in train mode
print(f"weights: {len(frozen)} frozen parameters unchanged, {len(trainable_moved)} trainable parameters moved, "
      f"counterfactual branch {len(branch)} parameters ({len(branch & moved)} moved), {len(buffers_moved)} buffers "
      f"moved{' (' + buffers_moved[0] + ', ...)' if buffers_moved else ''}")
print(f"RESULT train_loss={metrics['train_loss']:.4f} eval_accuracy={metrics['eval_accuracy']:.4f} "
      f"eval_loss={metrics['eval_loss']:.4f} counterfactual={config.counterfactual} top={answer[0]['label']}")
EOF
        then
            failed+=("$name (reload check)")
        fi
    done
done

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]} (logs in $WORK_DIR/logs)"
    exit 1
fi
echo "all runs trained, evaluated, saved and classified a file (logs in $WORK_DIR/logs)"
