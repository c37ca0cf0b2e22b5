"""Benchmark of the genremert models on default-size configs (random weights): prints the figures of docs/models.md.

For GenreMERT (MERT-v1-95M shape, 10 labels), CRNN_FGNL (20 labels) and the self-attention tagger (50 tags,
multi-label):

- parameters with and without the counterfactual branch (all / trainable);
- eval latency per slice (10 s; the tagger's own 15 s; or `--slice-seconds`) at batch 1 (`torch.inference_mode`),
  median of `--repeats` runs;
- the train-step time ratio counterfactual / plain: forward + the LCA loss of Eq. 1 (the trainer's own terms, with
  the reference weights; BCE and Bernoulli entropies for the tagger) + backward + Adam step, with
  `counterfactual="learned"` versus `"none"`, interleaved runs, medians. Target for GenreMERT: ≤ 1.10 (the frozen
  backbone runs once per step, the branch only adds a second time attention);
- that eval logits are identical with and without the branch (same weights).

Usage:
    python benchmarks/benchmark_models.py                   # CPU, all threads torch picks
    python benchmarks/benchmark_models.py --threads 2 --batch-size 4 --repeats 5
    python benchmarks/benchmark_models.py --device cuda
    python benchmarks/benchmark_models.py --bf16 --compile --threads 2 --repeats 5   # GenreMERT bfloat16 ratios
"""

import argparse
import os
import statistics
import sys
import time

import torch


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configuration_genremert import CRNNFGNLConfig, GenreMERTConfig, SelfAttentionTaggerConfig  # noqa: E402
from genremert import (  # noqa: E402  # noqa: E402
    REFERENCE_LCA_WEIGHTS,
    CRNNFGNLForAudioClassification,
    GenreMERTForAudioClassification,
    SelfAttentionTaggerForAudioClassification,
    combine_lca_loss,
    lca_loss_terms,
)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lca_style_loss(output, labels: torch.Tensor, multi_label: bool = False) -> torch.Tensor:
    """The LCA loss of paper Eq. 1 (the trainer's terms, reference weights; the plain model's CE and entropy only), so
    that the timed step does the work a real LCA step does."""
    terms = lca_loss_terms(
        output.logits,
        labels,
        output.counterfactual_logits,
        output.attention,
        output.counterfactual_attention,
        multi_label=multi_label,
    )
    return combine_lca_loss(terms, {name: weight for name, weight in REFERENCE_LCA_WEIGHTS.items() if name in terms})


class ReferenceShapedGenreMERT(torch.nn.Module):
    """The reference genreMERT's computation written directly (NOTES §1b), as a speed baseline: MERT with every
    hidden state → stack → Conv2d(13→1, 1×1) → time attention (mean over features → Conv2d 1→16 → tanh → Conv2d 16→1
    → softmax over time) → Linear 768→32 → Linear 32→labels. Not the reference's code: its shapes and operations."""

    def __init__(self, backbone: torch.nn.Module, num_labels: int):
        super().__init__()
        hidden = backbone.config.hidden_size
        self.backbone = backbone
        self.aggregator = torch.nn.Conv2d(backbone.config.num_hidden_layers + 1, 1, kernel_size=1)
        self.attention_hidden = torch.nn.Conv2d(1, 16, kernel_size=1)
        self.attention_score = torch.nn.Conv2d(16, 1, kernel_size=1)
        self.hidden_layer = torch.nn.Linear(hidden, 32)
        self.output_layer = torch.nn.Linear(32, num_labels)

    def forward(self, input_values):
        states = torch.stack(self.backbone(input_values, output_hidden_states=True).hidden_states, dim=1)
        states = self.aggregator(states)[:, 0]  # (batch, frames, hidden)
        scores = states.mean(-1)[:, None, None, :]  # (batch, 1, 1, frames)
        scores = self.attention_score(torch.tanh(self.attention_hidden(scores)))[:, 0, 0]  # (batch, frames)
        pooled = torch.bmm(scores.softmax(-1)[:, None], states)[:, 0]
        return self.output_layer(self.hidden_layer(pooled))


def count(model) -> tuple[int, int]:
    return model.num_parameters(), model.num_parameters(only_trainable=True)


def eval_latency(model, inputs, repeats: int, device) -> float:
    model.eval()
    with torch.inference_mode():
        model(inputs)  # warm-up
        timings = []
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            model(inputs)
            synchronize(device)
            timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def train_step_times(models: dict, inputs, labels, repeats: int, device) -> dict:
    optimizers = {
        name: torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        for name, model in models.items()
    }
    timings = {name: [] for name in models}
    for step in range(repeats + 1):  # the first round warms up
        for name, model in models.items():  # interleaved, so load changes hit both alike
            model.train()
            synchronize(device)
            start = time.perf_counter()
            optimizers[name].zero_grad(set_to_none=True)
            multi_label = model.config.problem_type == "multi_label_classification"
            lca_style_loss(model(inputs), labels, multi_label).backward()
            optimizers[name].step()
            synchronize(device)
            if step:
                timings[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in timings.items()}


def benchmark(name, model_class, config_class, config_kwargs, args, device) -> None:
    torch.manual_seed(0)
    plain = model_class(config_class(counterfactual="none", **config_kwargs)).to(device)
    torch.manual_seed(0)
    lca = model_class(config_class(counterfactual="learned", **config_kwargs)).to(device)
    lca.load_state_dict(plain.state_dict(), strict=False)  # same weights outside the branch

    sampling_rate = plain.config.sampling_rate
    slice_seconds = args.slice_seconds or (plain.config.slice_seconds if name == "SelfAttentionTagger" else 10.0)
    slice_samples = int(slice_seconds * sampling_rate)
    generator = torch.Generator().manual_seed(0)
    one_slice = (0.1 * torch.randn(1, slice_samples, generator=generator)).to(device)
    batch = (0.1 * torch.randn(args.batch_size, slice_samples, generator=generator)).to(device)
    labels = torch.arange(args.batch_size, device=device) % plain.config.num_labels
    if plain.config.problem_type == "multi_label_classification":  # a few tags per clip
        labels = (torch.rand(args.batch_size, plain.config.num_labels, generator=generator) < 0.1).float().to(device)

    plain_all, plain_trainable = count(plain)
    lca_all, lca_trainable = count(lca)
    print(f"== {name} ({plain.config.num_labels} labels) on {device}, {torch.get_num_threads()} threads ==")
    print(f"parameters without branch: {plain_all:,} ({plain_all / 1e6:.2f} M), trainable {plain_trainable:,}")
    print(
        f"parameters with branch:    {lca_all:,} ({lca_all / 1e6:.2f} M), trainable {lca_trainable:,} "
        f"(branch: {lca_all - plain_all:,})"
    )

    plain.eval(), lca.eval()
    with torch.inference_mode():
        identical = torch.equal(plain(one_slice).logits, lca(one_slice).logits)
    print(f"eval logits identical with and without the branch: {identical}")

    latency = eval_latency(plain, one_slice, args.repeats, device)
    print(f"eval latency per {slice_seconds:g} s slice (batch 1): {latency * 1000:.1f} ms")
    batch_latency = eval_latency(plain, batch, args.repeats, device)
    print(
        f"eval latency per {slice_seconds:g} s slice (batch {args.batch_size}): "
        f"{batch_latency / args.batch_size * 1000:.1f} ms"
    )

    # Reduced precision: the same clips in float32, with the weights in bfloat16 (`dtype=torch.bfloat16`), and under
    # bfloat16 autocast; agreement with float32 (top-1, largest probability difference) on those clips.
    reduced = model_class(config_class(counterfactual="none", **config_kwargs)).to(device)
    reduced.load_state_dict(plain.state_dict())
    reduced = reduced.to(torch.bfloat16).eval()
    float32_time = eval_latency(plain, batch, args.repeats, device) / args.batch_size
    bfloat16_time = eval_latency(reduced, batch, args.repeats, device) / args.batch_size
    with torch.autocast(device.type, dtype=torch.bfloat16):
        autocast_time = eval_latency(plain, batch, args.repeats, device) / args.batch_size
    with torch.inference_mode():
        full = plain(batch).logits.float().softmax(-1)
        half = reduced(batch).logits.float().softmax(-1)
    agreement = (full.argmax(-1) == half.argmax(-1)).float().mean().item()
    reference_note = ""
    if name == "GenreMERT":
        reference = ReferenceShapedGenreMERT(plain.backbone, plain.config.num_labels).to(device).eval()
        with torch.inference_mode():
            reference_time = eval_latency(reference, batch, args.repeats, device) / args.batch_size
        reference_note = (
            f"; reference-shaped model {reference_time * 1000:.0f} ms: ours float32 {float32_time / reference_time:.2f}×, "
            f"ours bfloat16 {bfloat16_time / reference_time:.2f}× of it"
        )
    print(
        f"eval per clip (batch {args.batch_size}): float32 {float32_time * 1000:.0f} ms, bfloat16 weights "
        f"{bfloat16_time * 1000:.0f} ms ({bfloat16_time / float32_time:.2f}×), bfloat16 autocast "
        f"{autocast_time * 1000:.0f} ms ({autocast_time / float32_time:.2f}×); bfloat16 vs float32: top-1 agreement "
        f"{agreement:.2f}, max probability difference {(full - half).abs().max().item():.4f}{reference_note}"
    )

    times = train_step_times({"plain": plain, "learned": lca}, batch, labels, args.repeats, device)
    ratio = times["learned"] / times["plain"]
    print(
        f"train step (batch {args.batch_size}): plain {times['plain'] * 1000:.1f} ms, "
        f"counterfactual {times['learned'] * 1000:.1f} ms, ratio {ratio:.3f}"
    )
    print()


def attention_backend_ratio(name, model_class, config_class, config_kwargs, args, device) -> None:
    """Eval latency with the SDPA backend over the eager one, the two interleaved in one process (eager, sdpa, eager,
    sdpa, …), the median of the per-round ratios with its spread, the load printed; the outputs compared."""
    import os
    import statistics

    torch.manual_seed(0)
    config = config_class(**config_kwargs)
    models = {}
    for backend in ("eager", "sdpa"):
        torch.manual_seed(0)
        models[backend] = model_class(config_class(**config_kwargs, attn_implementation=backend)).to(device).eval()
    seconds = args.slice_seconds or config.slice_seconds
    inputs = torch.randn(
        args.batch_size, int(config.sampling_rate * seconds), generator=torch.Generator().manual_seed(1)
    )
    inputs = inputs.to(device)
    with torch.no_grad():
        difference = (models["sdpa"](inputs).logits - models["eager"](inputs).logits).abs().max().item()
        ratios = []
        for _ in range(args.repeats):
            times = {backend: eval_latency(models[backend], inputs, 1, device) for backend in ("eager", "sdpa")}
            ratios.append(times["sdpa"] / times["eager"])
    print(
        f"{name}: attention backend sdpa / eager eval latency (batch {args.batch_size}, {seconds:g} s, {args.repeats} "
        f"interleaved rounds): median {statistics.median(ratios):.3f} (range {min(ratios):.3f}–{max(ratios):.3f}); "
        f"max |logit difference| {difference:.2e}; load {os.getloadavg()[0]:.2f}"
    )


def timed_call(call, inputs, device) -> float:
    """Seconds of one `call(inputs)` under `torch.inference_mode`."""
    with torch.inference_mode():
        synchronize(device)
        start = time.perf_counter()
        call(inputs)
        synchronize(device)
    return time.perf_counter() - start


def bf16_ratios(args, device) -> None:
    """GenreMERT (default size, random weights) per clip: float32 against the reference-shaped model, and bfloat16
    weights, bfloat16 autocast and (with `--compile`) the compiled bfloat16 model against float32. The variants run
    interleaved (float32, reference, bfloat16, autocast, compiled, float32, ...); each figure is the median of the
    per-round ratios with their range, the load printed. Agreement with float32 on the timed clips: top-1 and the
    largest probability difference."""
    torch.manual_seed(0)
    config = GenreMERTConfig(num_labels=10)
    model = GenreMERTForAudioClassification(config).to(device).eval()
    bfloat16 = GenreMERTForAudioClassification(config).to(device)
    bfloat16.load_state_dict(model.state_dict())
    bfloat16 = bfloat16.to(torch.bfloat16).eval()
    reference = ReferenceShapedGenreMERT(model.backbone, config.num_labels).to(device).eval()
    seconds = args.slice_seconds or 10.0
    generator = torch.Generator().manual_seed(0)
    inputs = (0.1 * torch.randn(args.batch_size, int(seconds * config.sampling_rate), generator=generator)).to(device)

    def autocast(batch):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return model(batch)

    variants = {
        "float32": model,
        "reference": reference,
        "bfloat16": bfloat16,
        "autocast": autocast,
    }
    if args.compile:
        compiled = torch.compile(bfloat16)
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(inputs)
        print(f"torch.compile of the bfloat16 model: first call {time.perf_counter() - start:.1f} s")
        variants["compiled"] = compiled

    with torch.inference_mode():
        full = model(inputs).logits.float().softmax(-1)
        agreement = {}
        for name in ("bfloat16", "autocast", "compiled"):
            if name in variants:
                reduced = variants[name](inputs).logits.float().softmax(-1)
                agreement[name] = (
                    (full.argmax(-1) == reduced.argmax(-1)).float().mean().item(),
                    (full - reduced).abs().max().item(),
                )
        for call in variants.values():  # warm-up (oneDNN primitive caches)
            call(inputs)
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, call in variants.items():
            times[name].append(timed_call(call, inputs, device))

    def ratio(name, baseline):
        ratios = [a / b for a, b in zip(times[name], times[baseline], strict=True)]
        return f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}–{max(ratios):.3f})"

    per_clip = {name: statistics.median(values) / args.batch_size * 1000 for name, values in times.items()}
    # Without native bfloat16 (oneDNN needs AVX-512 with BF16 or AMX), bfloat16 convolutions and matmuls fall back to
    # reference kernels many times slower than float32: say which case the figures are.
    hardware = f"CPU capability {torch.backends.cpu.get_cpu_capability()}, oneDNN bfloat16 " + (
        "yes" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "NO (reference kernels)"
    )
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    print(
        f"GenreMERT eval per {seconds:g} s clip, batch {args.batch_size}, {torch.get_num_threads()} threads, "
        f"{args.repeats} interleaved rounds, load {os.getloadavg()[0]:.2f}; {hardware}:"
    )
    print(f"  float32 {per_clip['float32']:.0f} ms; / reference-shaped model: {ratio('float32', 'reference')}")
    for name in ("bfloat16", "autocast", "compiled"):
        if name in variants:
            top1, difference = agreement[name]
            print(
                f"  {name} {per_clip[name]:.0f} ms; / float32: {ratio(name, 'float32')}; top-1 agreement {top1:.2f}, "
                f"max probability difference {difference:.4f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, default=4, help="batch of the train step (default: 4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions, medians reported (default: 5)")
    parser.add_argument(
        "--slice-seconds", type=float, default=None, help="slice length (default: 10 s; the tagger's own 15 s)"
    )
    choices = ["crnn_fgnl", "genremert", "self_attention_tagger"]
    parser.add_argument("--models", nargs="+", default=choices, choices=choices)
    parser.add_argument(
        "--attention-backends",
        action="store_true",
        help="only the sdpa / eager ratio of GenreMERT (its backbone) and the tagger, interleaved",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="only GenreMERT per-clip ratios: float32 / reference-shaped model, bfloat16 weights and autocast / "
        "float32, interleaved",
    )
    parser.add_argument("--compile", action="store_true", help="with --bf16: also the torch.compile'd bfloat16 model")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.compile and not args.bf16:
        parser.error("--compile goes with --bf16")
    if args.bf16:
        bf16_ratios(args, device)
        return
    if args.attention_backends:
        if "genremert" in args.models:
            attention_backend_ratio(
                "GenreMERT", GenreMERTForAudioClassification, GenreMERTConfig, {"num_labels": 10}, args, device
            )
        if "self_attention_tagger" in args.models:
            attention_backend_ratio(
                "SelfAttentionTagger",
                SelfAttentionTaggerForAudioClassification,
                SelfAttentionTaggerConfig,
                {"num_labels": 50},
                args,
                device,
            )
        return

    if "genremert" in args.models:
        benchmark("GenreMERT", GenreMERTForAudioClassification, GenreMERTConfig, {"num_labels": 10}, args, device)
    if "crnn_fgnl" in args.models:
        benchmark("CRNN_FGNL", CRNNFGNLForAudioClassification, CRNNFGNLConfig, {"num_labels": 20}, args, device)
    if "self_attention_tagger" in args.models:
        benchmark(
            "SelfAttentionTagger",
            SelfAttentionTaggerForAudioClassification,
            SelfAttentionTaggerConfig,
            {"num_labels": 50},
            args,
            device,
        )


if __name__ == "__main__":
    main()
