"""The adapter with both projections frozen, folded into the base weight on the fly.

Once A and B are frozen only d and b train, and ``W0 x + b * (B (d * (A x)))`` equals one linear
layer with the weight ``W = W0 + diag(b) B diag(d) A``. Building W costs out·r·in, independent of
the number of tokens; the layer-by-layer path instead runs two skinny rank-r products forward and
two backward per token and three elementwise passes over the (tokens, out) activation, all
memory-bound. ``python -m harness.bench rows=floor,aflora-frozen,aflora-frozen-unfolded`` measures
both paths against the floor; ``tests/test_aflora_folded.py`` checks the numerics.

Autograd cannot fold by itself: differentiating ``F.linear(x, W)`` would compute the full (out, in)
gradient of W, a matmul as large as the forward. This function returns the gradients d and b
actually need, from ``grad_M = grad_y^T (A x)`` with ``M = diag(b) B diag(d)`` (out x r).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fold_pays_off(tokens: int, in_features: int, out_features: int) -> bool:
    """Whether folding costs fewer multiply-adds than the layer-by-layer path.

    Folded: W built forward and again backward, 2·out·r·in, plus r·(in + out) per token for ``A x``
    and the gradient of M. Layer by layer: r·(in + out) per token forward and again backward. The
    difference does not depend on r; below the threshold (short batches, e.g. single-sentence
    inference) building W costs more than it saves.
    """
    return tokens * (in_features + out_features) >= 2 * in_features * out_features


def folded_linear(x, weight, bias, weight_a, weight_b, vec_d, vec_b) -> torch.Tensor:
    """``x (W0 + diag(b) B diag(d) A)^T + bias``; through ``FoldedAdapterLinear`` when gradients are on."""
    if torch.is_grad_enabled():
        return FoldedAdapterLinear.apply(x, weight, bias, weight_a, weight_b, vec_d, vec_b)
    return F.linear(x, folded_weight(weight, weight_a, weight_b, vec_d, vec_b), bias)  # no A x to keep


def scaled_up_projection(weight_b: torch.Tensor, vec_d: torch.Tensor, vec_b: torch.Tensor) -> torch.Tensor:
    """``M = diag(b) B diag(d)``, shape (out, r); ``M A`` is the adapter's delta weight."""
    return weight_b * vec_d * vec_b.unsqueeze(-1)


def folded_weight(weight, weight_a, weight_b, vec_d, vec_b) -> torch.Tensor:
    """``W = W0 + diag(b) B diag(d) A``, shape (out, in)."""
    return torch.addmm(weight, scaled_up_projection(weight_b, vec_d, vec_b), weight_a)


class FoldedAdapterLinear(torch.autograd.Function):
    """``y = x (W0 + diag(b) B diag(d) A)^T + bias`` with gradients for x, bias, d and b only.

    W0, A and B must not require gradients (the caller checks; the forward raises otherwise rather
    than return a silently missing gradient). Nothing of size (tokens, out) is saved: only ``A x``
    (tokens, r), and W is rebuilt in the backward instead of kept (it is as large as W0).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, weight_a, weight_b, vec_d, vec_b):  # type: ignore[override]
        if any(t.requires_grad for t in (weight, weight_a, weight_b)):
            raise RuntimeError("FoldedAdapterLinear computes no gradient for W0, A or B: they must be frozen")
        folded = folded_weight(weight, weight_a, weight_b, vec_d, vec_b)
        x_a = F.linear(x, weight_a) if (vec_d.requires_grad or vec_b.requires_grad) else None
        ctx.save_for_backward(weight, weight_a, weight_b, vec_d, vec_b, x_a)
        ctx.has_bias = bias is not None
        return F.linear(x, folded, bias)

    @staticmethod
    def backward(ctx, grad_y):  # type: ignore[override]
        weight, weight_a, weight_b, vec_d, vec_b, x_a = ctx.saved_tensors
        needs_x, _, needs_bias, _, _, needs_d, needs_b = ctx.needs_input_grad
        grad_flat = grad_y.reshape(-1, grad_y.shape[-1])  # (tokens, out)
        grad_x = grad_bias = grad_d = grad_b = None
        if needs_x:
            folded = folded_weight(weight, weight_a, weight_b, vec_d, vec_b)
            grad_x = (grad_flat @ folded).view(*grad_y.shape[:-1], folded.shape[1])
        if needs_bias and ctx.has_bias:
            grad_bias = grad_flat.sum(0)
        if needs_d or needs_b:
            # (r, tokens) @ (tokens, out): the transposed product is several times faster on CPU
            # than grad^T @ x_a, whose operand would be read against its memory layout.
            grad_m = (x_a.reshape(-1, x_a.shape[-1]).t() @ grad_flat).t()  # (out, r)
            if needs_d:
                grad_d = (grad_m * weight_b * vec_b.unsqueeze(-1)).sum(0)
            if needs_b:
                grad_b = (grad_m * weight_b * vec_d).sum(1)
        return grad_x, None, grad_bias, None, None, grad_d, grad_b
