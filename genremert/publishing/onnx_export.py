"""A trained model folder → an ONNX file of its eval forward (waveform → logits), checked against eager PyTorch.

    python export_onnx.py --model runs/gtzan --output gtzan.onnx [--seconds 10] [--trust_remote_code]

The export goes through `torch.export` (`torch.onnx.export(..., dynamo=True)`; needs `onnxscript`, the `export`
extra) with a dynamic batch and, where the model allows it, a dynamic length (CRNN_FGNL's GRUs are unrolled by the
tracer: its length is the slice length it was trained on). The eval forward never computes the counterfactual branch,
so it is not in the file. The result is verified before the command reports success: onnxruntime (when installed)
runs the file on two batches and the largest logit difference from eager PyTorch must be ≤ `--tolerance`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


class LogitsOnly(torch.nn.Module):
    """The eval forward as ONNX sees it: `input_values (batch, samples)` → `logits (batch, num_labels)`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.model(input_values=input_values, return_dict=True).logits


def example_input(model, seconds: float | None = None, batch_size: int = 2, seed: int = 0) -> torch.Tensor:
    """A deterministic waveform batch `(batch, samples)` of the model's slice length (or `seconds`)."""
    seconds = float(seconds if seconds is not None else model.config.slice_seconds)
    samples = int(round(seconds * model.config.sampling_rate))
    return torch.randn(batch_size, samples, generator=torch.Generator().manual_seed(seed))


def has_dynamic_length(model) -> bool:
    """CRNN_FGNL's recurrent head is unrolled by `torch.export`: its length stays the one traced."""
    return getattr(model.config, "model_type", None) != "crnn_fgnl"


def export_onnx(model, output_path, seconds: float | None = None, tolerance: float = 1e-4) -> dict:
    """Exports `model` (eval mode) to `output_path` and verifies it; returns the figures of the check.

    Raises `ImportError` naming the extra when `onnxscript` is missing, and `RuntimeError` when onnxruntime's logits
    differ from eager PyTorch by more than `tolerance`."""
    try:
        import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter needs it)
    except ImportError as error:
        raise ImportError(
            "ONNX export needs onnxscript: pip install 'genremert[export]' (onnxscript, onnxruntime)."
        ) from error
    from torch.export import Dim

    model = model.eval()
    wrapper = LogitsOnly(model).eval()
    inputs = example_input(model, seconds)
    length = Dim.AUTO if has_dynamic_length(model) else Dim.STATIC
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (inputs,),
            dynamo=True,
            input_names=["input_values"],
            output_names=["logits"],
            dynamic_shapes={"input_values": {0: Dim("batch", min=1, max=1024), 1: length}},
            external_data=False,
            verbose=False,
        )
    program.save(str(output_path))
    report = {"path": str(output_path), "dynamic_length": has_dynamic_length(model), "checked_with": None}
    try:
        import onnxruntime
    except ImportError:
        return report
    session = onnxruntime.InferenceSession(str(output_path), providers=["CPUExecutionProvider"])
    batches = [inputs, example_input(model, seconds, batch_size=3, seed=1)]
    if has_dynamic_length(model):
        batches.append(example_input(model, 1.5 * inputs.shape[1] / model.config.sampling_rate, batch_size=1, seed=2))
    worst = 0.0
    for batch in batches:
        (onnx_logits,) = session.run(["logits"], {"input_values": batch.numpy()})
        with torch.no_grad():
            eager = wrapper(batch).numpy()
        worst = max(worst, float(np.abs(onnx_logits - eager).max()))
    report.update(checked_with=f"onnxruntime {onnxruntime.__version__}", max_abs_logit_difference=worst)
    report["batches"] = [tuple(batch.shape) for batch in batches]
    if not worst <= tolerance:
        raise RuntimeError(
            f"{output_path}: onnxruntime's logits differ from PyTorch's by {worst:.3g} > --tolerance {tolerance}."
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="A trained model folder (or Hub id).")
    parser.add_argument("--output", required=True, help="The .onnx file to write.")
    parser.add_argument("--seconds", type=float, default=None, help="Traced slice length (default: the config's).")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="Largest logit difference from PyTorch.")
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Run the code in --model for a model type genremert does not know (never needed for ours).",
    )
    args = parser.parse_args(argv)
    from transformers import AutoModelForAudioClassification

    from ..registry import load_pretrained

    try:
        model = load_pretrained(
            AutoModelForAudioClassification, args.model, trust_remote_code=args.trust_remote_code, flag="--model"
        )
        report = export_onnx(model, args.output, args.seconds, args.tolerance)
    except (ImportError, OSError, ValueError, RuntimeError) as error:
        print(f"export_onnx.py: error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {report['path']} (dynamic batch{', dynamic length' if report['dynamic_length'] else ''}); "
        + (
            f"checked with {report['checked_with']}: largest logit difference {report['max_abs_logit_difference']:.2e}"
            if report["checked_with"]
            else "not checked (onnxruntime is not installed)"
        )
    )
    return 0
