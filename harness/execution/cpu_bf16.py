"""Whether this CPU computes bf16 natively; where it does not, a bf16 run is slow, and told so.

bf16 pays off on a CPU with bf16 instructions (AVX512-BF16 or AMX). Elsewhere PyTorch emulates it:
on an AMD EPYC with AVX2 only, a MiniLM training step ran 24 times slower than in fp32 and the
matmul peak was 47 times lower (README, "Training speed on a CPU"); a paper-budget LoRA run there
made 23 of its 1,160 steps in 27 CPU minutes, a day's pace for an hour's run. PyTorch tells which
through private checks of ``torch.cpu``; a build without them is not judged.
"""

from __future__ import annotations

import torch

EMULATED_BF16 = (
    "train.precision=bf16 on a CPU without bf16 instructions (AVX512-BF16 or AMX): PyTorch emulates it, "
    "and a MiniLM training step ran 24 times slower than in fp32 on such a CPU; train.precision=fp32 is "
    "the fast choice here"
)


def emulated_bf16() -> bool:
    """True where PyTorch can tell this CPU has neither AVX512-BF16 nor AMX."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return all(callable(check) for check in checks) and not any(check() for check in checks)
