"""The machine's limit: matrix-product throughput on the model's own shapes, and each row's MFU.

The peak is measured in the bench's process, at its thread count and on its clock, right before the
rows: for every distinct backbone linear (in, out) of the model, ``(tokens, in) @ (in, out)`` with
``tokens = batch x seq``, in float32 and in bfloat16 (plain tensors of that dtype, no autocast).
Each shape's throughput is the median over ``reps`` products; the peak of a precision is the best
shape. MFU (model FLOPs utilisation) = a row's model FLOP/s (``flops.training_macs_per_token`` x 2
x tokens / step time) / the peak of the row's precision.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from torch import nn

from harness.bench.flops import PER_SEQUENCE
from harness.execution.params import is_head_param

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """The distinct (in, out) of the model's per-token ``nn.Linear`` layers, largest first."""
    shapes = {
        (m.in_features, m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and not is_head_param(name, PER_SEQUENCE)
    }
    return sorted(shapes, key=lambda s: -s[0] * s[1])


def matmul_flops_per_second(
    tokens: int, shape: tuple[int, int], dtype: torch.dtype, device: torch.device, clock: Callable[[], float], reps: int
) -> float:
    """FLOP/s of ``(tokens, in) @ (in, out)``: the median over ``reps`` timed products (one untimed first)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(tokens, shape[0], generator=generator).to(device, dtype)
    b = torch.randn(shape[0], shape[1], generator=generator).to(device, dtype)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    seconds = []
    for rep in range(reps + 1):
        sync()
        start = clock()
        a @ b
        sync()
        if rep:
            seconds.append(clock() - start)
    return 2 * tokens * shape[0] * shape[1] / statistics.median(seconds)


def measure_peaks(
    model: nn.Module,
    tokens: int,
    precisions: list[str],
    device: torch.device,
    clock: Callable[[], float],
    reps: int = 5,
) -> dict[str, dict]:
    """{precision: {"peak": FLOP/s, "shapes": {"in x out": FLOP/s}}} on the model's linear shapes."""
    peaks = {}
    for precision in precisions:
        by_shape = {
            f"{i}x{o}": matmul_flops_per_second(tokens, (i, o), DTYPES[precision], device, clock, reps)
            for i, o in linear_shapes(model)
        }
        peaks[precision] = {"peak": max(by_shape.values()), "shapes": by_shape}
    return peaks


def step_flops(training_macs_per_token: int, tokens: int) -> int:
    """Model FLOPs of one training step: two per multiply-add, per token of the batch run."""
    return 2 * training_macs_per_token * tokens


def mfu(flops: float, seconds: float, peak: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the peak FLOP/s."""
    return flops / seconds / peak
