"""Two ways to make an attack step cheaper on CPU, measured against the eager float32 step the attacks take.

One attack step is one forward and one backward pass to the input. For each bench surrogate (EfficientNet-Lite0,
MobileNetV2, random init, 2 logits, channels_last weights and inputs, a batch of 64 at 64x64), each variant's
step is run `--repeats` times, interleaved with the eager step, 3 steps per repeat:
- bf16: the forward under `torch.autocast("cpu", dtype=torch.bfloat16)` (worth trying where the CPU has
  avx512_bf16 or amx); also the share of input-gradient signs that agree with float32's, since PGD steps by them;
- compile: `torch.compile` (inductor; needs a C++ compiler), its compile time reported apart.
Ratio = eager seconds / variant seconds (> 1: the variant is faster), min / median / max over the repeats.

    PYTHONPATH=. python benchmarks/step_variants.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_attacks as bench  # noqa: E402  (the same models, sizes, interleaved timing and spreads)

STEPS_PER_REPEAT = 3


def _step(model: torch.nn.Module, x: torch.Tensor, bf16: bool = False) -> Callable[[], torch.Tensor]:
    def step() -> torch.Tensor:
        point = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(point)
        (gradient,) = torch.autograd.grad(logits.float()[:, 1].sum(), point)
        return gradient

    return step


def _ratios(eager: Callable, variant: Callable, repeats: int) -> str:
    """Eager seconds over the variant's, `STEPS_PER_REPEAT` steps per run, interleaved, after one warm-up each."""
    eager(), variant()
    runs = {name: (lambda f=f: [f() for _ in range(STEPS_PER_REPEAT)]) for name, f in (("e", eager), ("v", variant))}
    seconds, _ = bench._timed(runs, repeats)
    return bench.spread_text(bench._spread([e / v for e, v in zip(seconds["e"], seconds["v"])]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    print(f"avx512_bf16: {'avx512_bf16' in flags}, amx_bf16: {'amx_bf16' in flags}, {args.threads} thread(s)")
    for arch in bench.ARCHS:
        model = bench._model(arch).to(memory_format=torch.channels_last)
        x = torch.randn(bench.BATCH, 1, bench.SIZE, bench.SIZE).contiguous(memory_format=torch.channels_last)
        eager = _step(model, x)
        agree = (eager().sign() == _step(model, x, bf16=True)().sign()).float().mean().item()
        bf16 = _ratios(eager, _step(model, x, bf16=True), args.repeats)
        start = time.perf_counter()
        compiled = _step(torch.compile(model), x)
        compiled()
        compile_s = time.perf_counter() - start
        max_diff = (eager() - compiled()).abs().max().item()
        ratio = _ratios(eager, compiled, args.repeats)
        print(
            f"{arch}: bf16 {bf16} (signs agree {agree:.3f}); compile {ratio} "
            f"after {compile_s:.0f} s (max |gradient difference| {max_diff:.2g})"
        )


if __name__ == "__main__":
    main()
