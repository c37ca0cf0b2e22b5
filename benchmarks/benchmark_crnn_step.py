"""CRNN_FGNL training step: the current `modeling_crnn_fgnl.py` against a frozen earlier version of it, interleaved in
one process, and a profile of where the current step spends its time.

A step is what the trainer does per batch: forward on raw waveforms (log-mel inside the model) → loss → backward →
Adam step. Both versions get the same weights (the state dicts are interchangeable), the same batch and the same
dropout seed; rounds alternate their order (A B, then B A, ...) so that drift in the machine's load biases neither
side, and the figure is the median of the per-round time ratios reference / current (> 1: the current one is faster),
with their range and the load average. Variants: `plain` (`counterfactual="none"`), `lca-mose` (the paper's LCA:
`counterfactual="learned"`, a second MoSE) and `lca-time` (`counterfactual_attention="time"`); the LCA variants use
the LCA loss of Eq. 1 with the reference weights.

The reference is `modeling_crnn_fgnl.py` as stored at a git revision (default: f856578, the last commit before the
step was made faster); its siblings (configuration, LCA module) come from the working tree.

    python benchmarks/benchmark_crnn_step.py                              # batch 16 × 5 s, default config, 5 rounds
    python benchmarks/benchmark_crnn_step.py --variants plain --rounds 9
    python benchmarks/benchmark_crnn_step.py --profile                   # where the current step's time goes
    python benchmarks/benchmark_crnn_step.py --reference HEAD~1 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from contextlib import nullcontext
from pathlib import Path

import torch


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import modeling_crnn_fgnl  # noqa: E402
from configuration_genremert import CRNNFGNLConfig  # noqa: E402
from genremert import REFERENCE_LCA_WEIGHTS, combine_lca_loss, lca_loss_terms  # noqa: E402


VARIANTS = {
    "plain": dict(counterfactual="none"),
    "lca-mose": dict(counterfactual="learned", counterfactual_attention="mose"),
    "lca-time": dict(counterfactual="learned", counterfactual_attention="time"),
}
DEFAULT_REFERENCE = "f856578"
# Submodules whose forward gets its own profiler range (the backward shows up as autograd ops).
PROFILED_MODULES = ("log_mel", "input_norm", "conv_blocks", "non_local", "mose", "fgnl_output", "head")


def load_reference_module(revision: str) -> types.ModuleType:
    """`modeling_crnn_fgnl.py` at `revision`, as a module of its own (`modeling_crnn_fgnl_reference`)."""
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:modeling_crnn_fgnl.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or error
        raise SystemExit(f"--reference {revision!r}: cannot read modeling_crnn_fgnl.py at that revision ({detail}).")
    module = types.ModuleType("modeling_crnn_fgnl_reference")
    module.__file__ = f"{revision}:modeling_crnn_fgnl.py"
    sys.modules[module.__name__] = module  # Transformers resolves the class annotations through sys.modules
    # dont_inherit: this script's `from __future__ import annotations` must not change how the reference compiles.
    code = compile(source, module.__file__, "exec", dont_inherit=True)
    exec(code, module.__dict__)  # its relative import fails and falls back to the flat one
    return module


def step_loss(output, labels: torch.Tensor) -> torch.Tensor:
    """The plain model's cross-entropy, or the LCA loss of Eq. 1 (the trainer's terms, reference weights)."""
    if output.counterfactual_logits is None:
        return output.loss
    terms = lca_loss_terms(
        output.logits, labels, output.counterfactual_logits, output.attention, output.counterfactual_attention
    )
    return combine_lca_loss(terms, {name: weight for name, weight in REFERENCE_LCA_WEIGHTS.items() if name in terms})


class TrainStep:
    """One model with its Adam optimizer; `run()` does one timed training step on a fixed batch."""

    def __init__(self, model: torch.nn.Module, input_values: torch.Tensor, labels: torch.Tensor, seed: int):
        self.model = model.train()
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        self.input_values, self.labels, self.seed = input_values, labels, seed

    def run(self, phase=nullcontext) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process) of one step."""
        torch.manual_seed(self.seed)  # the same dropout masks for both versions
        start, start_cpu = time.perf_counter(), time.process_time()
        with phase("forward"):
            output = self.model(input_values=self.input_values, labels=self.labels)
            loss = step_loss(output, self.labels)
        self.optimizer.zero_grad(set_to_none=True)
        with phase("backward"):
            loss.backward()
        with phase("optimizer"):
            self.optimizer.step()
        return time.perf_counter() - start, time.process_time() - start_cpu


def build_pair(variant: str, reference, args) -> tuple[TrainStep, TrainStep]:
    """The reference and the current model with the same weights, batch and seed."""
    config = CRNNFGNLConfig(num_labels=20, slice_seconds=args.seconds, **VARIANTS[variant])
    torch.manual_seed(0)
    current = modeling_crnn_fgnl.CRNNFGNLForAudioClassification(config)
    old = reference.CRNNFGNLForAudioClassification(config)
    old.load_state_dict(current.state_dict())
    generator = torch.Generator().manual_seed(1)
    samples = int(args.seconds * config.sampling_rate)
    input_values = 0.1 * torch.randn(args.batch_size, samples, generator=generator)
    labels = torch.arange(args.batch_size) % config.num_labels
    return TrainStep(old, input_values, labels, seed=2), TrainStep(current, input_values, labels, seed=2)


def summary(ratios: list[float]) -> str:
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return (
        f"median {statistics.median(ratios):.3f} (quartiles {quartiles[0]:.3f}–{quartiles[2]:.3f}, "
        f"range {min(ratios):.3f}–{max(ratios):.3f})"
    )


def compare(variant: str, reference, args) -> None:
    """Interleaved rounds; per round the ratio reference / current of the wall time and of the process CPU time (on a
    shared machine the CPU time is the steadier figure with one thread: it leaves out the time spent waiting for a
    core, though not the slowdown from shared caches and memory bandwidth)."""
    old, new = build_pair(variant, reference, args)
    for _ in range(args.warmup):
        old.run()
        new.run()
    wall_ratios, cpu_ratios, old_walls, new_walls = [], [], [], []
    for round_index in range(args.rounds):
        if round_index % 2 == 0:
            (old_wall, old_cpu), (new_wall, new_cpu) = old.run(), new.run()
        else:
            (new_wall, new_cpu), (old_wall, old_cpu) = new.run(), old.run()
        old_walls.append(old_wall)
        new_walls.append(new_wall)
        wall_ratios.append(old_wall / new_wall)
        cpu_ratios.append(old_cpu / new_cpu)
        print(
            f"  {variant} round {round_index + 1}: reference {old_wall:.2f} s ({old_cpu:.2f} s CPU), current "
            f"{new_wall:.2f} s ({new_cpu:.2f} s CPU), ratio {wall_ratios[-1]:.3f} (CPU {cpu_ratios[-1]:.3f}), "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    print(
        f"{variant}: step speed-up reference / current ({args.rounds} interleaved rounds, batch {args.batch_size} × "
        f"{args.seconds:g} s, {torch.get_num_threads()} threads): wall {summary(wall_ratios)}; CPU time "
        f"{summary(cpu_ratios)}; median step {statistics.median(old_walls):.2f} s → "
        f"{statistics.median(new_walls):.2f} s; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )


class ModuleRanges:
    """Opens a profiler range named after each of `PROFILED_MODULES` around its forward."""

    def __init__(self, model: torch.nn.Module):
        self.handles, self.open = [], {}
        for name in PROFILED_MODULES:
            module = getattr(model, name, None)
            if module is None:
                continue
            # A ModuleList is never called itself: one range per element (conv_blocks.0, ...).
            named = module.named_children() if isinstance(module, torch.nn.ModuleList) else [("", module)]
            for index, child in named:
                label = f"{name}.{index}" if index else name
                self.handles.append(child.register_forward_pre_hook(self._enter(label)))
                self.handles.append(child.register_forward_hook(self._exit(label)))

    def _enter(self, name):
        def hook(module, args):
            self.open[name] = torch.profiler.record_function(f"forward:{name}")
            self.open[name].__enter__()

        return hook

    def _exit(self, name):
        def hook(module, args, output):
            self.open.pop(name).__exit__(None, None, None)

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def profile_step(name: str, train_step: TrainStep, rows: int) -> None:
    """One profiled step: time per range (forward per module, backward, optimizer), then the operators by self time."""
    train_step.run()  # warm-up: allocator, oneDNN primitives
    ranges = ModuleRanges(train_step.model)
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            train_step.run(phase=torch.profiler.record_function)
    finally:
        ranges.remove()
    events = profiler.key_averages()
    step = sum(event.cpu_time_total for event in events if event.key in ("forward", "backward", "optimizer"))
    print(f"{name}: profiled step {step / 1e6:.2f} s (load {os.getloadavg()[0]:.2f})")
    for event in sorted(events, key=lambda event: -event.cpu_time_total):
        if event.key in ("forward", "backward", "optimizer") or event.key.startswith("forward:"):
            print(f"  {event.key:<24} {event.cpu_time_total / 1e6:7.2f} s  {100 * event.cpu_time_total / step:5.1f} %")
    print(events.table(sort_by="self_cpu_time_total", row_limit=rows), flush=True)


def profile(variant: str, reference, args) -> None:
    """Profiles of one step of the reference, then of the current version."""
    old, new = build_pair(variant, reference, args)
    profile_step(f"{variant} reference", old, args.profile_rows)
    profile_step(f"{variant} current", new, args.profile_rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="slice length (default: 5 s, the config's)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds per variant (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each version first (default: 1)")
    parser.add_argument(
        "--reference",
        default=DEFAULT_REFERENCE,
        help=f"git revision of the reference modeling_crnn_fgnl.py (default: {DEFAULT_REFERENCE})",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--profile", action="store_true", help="profile one step of each version instead")
    parser.add_argument("--profile_rows", type=int, default=25)
    args = parser.parse_args(argv)
    for flag in ("batch_size", "rounds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}.")
    if args.seconds <= 0:
        parser.error(f"--seconds must be positive, got {args.seconds}.")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    reference = load_reference_module(args.reference)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, reference {args.reference}, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    for variant in args.variants:
        if args.profile:
            profile(variant, reference, args)
        else:
            compare(variant, reference, args)


if __name__ == "__main__":
    main()
