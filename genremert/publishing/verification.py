"""Proof that an export folder works on its own: the remote-code files it must carry (derived from the imports), and
its reload in a fresh Python process with `trust_remote_code=True` while every module of this repository is blocked,
compared logit for logit with the trained model."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from .export_checks import ExportError


def remote_code_files(model_class=None) -> list[str]:
    """The remote-code files a saved folder carries for `trust_remote_code=True`: the modeling file of `model_class`
    (default: every genremert model) and every sibling it imports, recursively, as `save_pretrained` copies them.
    Derived from the imports themselves, never kept by hand."""
    from transformers.dynamic_module_utils import get_relative_import_files

    from ..registry import MODEL_CLASSES

    classes = [model_class] if model_class is not None else [model for _, model in MODEL_CLASSES.values()]
    names = set()
    for cls in classes:
        modeling_file = inspect.getfile(cls)
        names.add(os.path.basename(modeling_file))
        names.update(os.path.basename(path) for path in get_relative_import_files(modeling_file))
    return sorted(names)


def repository_modules() -> list[str]:
    """Modules of this repository that the verification process must not import, so that it proves the export folder
    works with its own copied code: the library package, the remote-code modules and the top-level scripts."""
    root = Path(__file__).resolve().parents[2]
    scripts = [path.stem for path in root.glob("*.py")]
    return sorted({"genremert", *(name[:-3] for name in remote_code_files()), *scripts})


# First line of the model card body: marks a folder this script wrote (and may therefore overwrite).
# Run in a fresh interpreter by `verify_export_folder` (cwd = a scratch folder, no PYTHONPATH): argv = folder, inputs file, output
# file, JSON list of blocked module names, thread count, 1/0 (also check the pipeline).
_VERIFY_SCRIPT = r'''
import json
import sys

folder, inputs_path, outputs_path, blocked_json, threads, check_pipeline = sys.argv[1:7]
BLOCKED = set(json.loads(blocked_json))


class RepositoryModuleBlocker:
    """Makes the repository's own modules unimportable: the folder must work with its copied code."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"module {name!r} is blocked during export verification")
        return None


sys.meta_path.insert(0, RepositoryModuleBlocker())

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForAudioClassification

torch.set_num_threads(int(threads))
model = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True, use_safetensors=True)
model.eval()
inputs = load_file(inputs_path)
with torch.no_grad():
    logits = model(**inputs).logits
save_file({"logits": logits.contiguous()}, outputs_path + ".safetensors")
report = {
    "class_name": type(model).__name__,
    "class_module": type(model).__module__,
    "num_parameters": sum(parameter.numel() for parameter in model.parameters()),
    "counterfactual": getattr(model.config, "counterfactual", None),
}
if check_pipeline == "1":
    from transformers import pipeline

    classifier = pipeline("audio-classification", model=folder, trust_remote_code=True)
    waveform = inputs["input_values"][0].numpy()
    predictions = classifier({"raw": waveform, "sampling_rate": int(model.config.sampling_rate)})
    report["pipeline_class"] = type(classifier).__name__
    report["pipeline_labels"] = [prediction["label"] for prediction in predictions]
with open(outputs_path + ".json", "w") as handle:
    json.dump(report, handle)
'''


def _fixed_inputs(config, batch_size: int = 2, seed: int = 0) -> dict:
    """A fixed random batch of one training slice per item: `input_values` `(batch, samples)`."""
    num_samples = int(round(config.sampling_rate * config.slice_seconds))
    generator = torch.Generator().manual_seed(seed)
    input_values = 0.1 * torch.randn(batch_size, num_samples, generator=generator)  # (batch, samples)
    return {"input_values": input_values}


def verify_export_folder(
    export_dir: Path,
    reference_logits: torch.Tensor,
    inputs: dict,
    check_pipeline: bool = True,
    timeout: float = 900.0,
) -> dict:
    """Load `export_dir` in a fresh interpreter with `trust_remote_code=True` (the repository's modules
    blocked) and check its logits on `inputs` equal `reference_logits` exactly. Returns the child's report
    (`num_parameters`, `class_module`, ...) plus `max_abs_logit_difference`."""
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory(prefix="genremert_verify_") as scratch:
        scratch = Path(scratch)
        inputs_path = scratch / "inputs.safetensors"
        save_file({name: tensor.contiguous() for name, tensor in inputs.items()}, str(inputs_path))
        script_path = scratch / "verify_export.py"
        script_path.write_text(_VERIFY_SCRIPT, encoding="utf-8")
        outputs_stem = scratch / "outputs"
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env["HF_HUB_OFFLINE"] = "1"
        env["HF_MODULES_CACHE"] = str(scratch / "modules")  # fresh copy of the remote code, no stale cache
        command = [
            sys.executable,
            str(script_path),
            str(Path(export_dir).resolve()),
            str(inputs_path),
            str(outputs_stem),
            json.dumps(repository_modules()),
            str(torch.get_num_threads()),
            "1" if check_pipeline else "0",
        ]
        completed = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout)
        if completed.returncode != 0:
            raise ExportError(
                f"The export folder {export_dir} does not load in a fresh process with trust_remote_code=True "
                f"(exit code {completed.returncode}). Its stderr ends with:\n{completed.stderr[-4000:]}"
            )
        report = json.loads((scratch / "outputs.json").read_text())
        logits = load_file(str(scratch / "outputs.safetensors"))["logits"]
    if not report["class_module"].startswith("transformers_modules"):
        raise ExportError(
            f"The fresh process loaded {report['class_name']} from {report['class_module']!r}, not from the export "
            "folder's own code (expected a transformers_modules.* dynamic module)."
        )
    if logits.shape != reference_logits.shape:
        raise ExportError(
            f"Logits of the reloaded export have shape {tuple(logits.shape)}, the trained model's "
            f"{tuple(reference_logits.shape)}."
        )
    difference = (logits - reference_logits).abs().max().item()
    if not torch.equal(logits, reference_logits):
        raise ExportError(
            f"Logits of the reloaded export differ from the trained model's (max |difference| = {difference:.3g}); "
            f"the export folder {export_dir} is not faithful."
        )
    report["max_abs_logit_difference"] = difference
    return report
