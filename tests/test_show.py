"""harness.show's one-screen summary: AFLoRA's freezing line."""

from __future__ import annotations

from harness.show import freezing_line


def test_the_freezing_line_counts_the_adaptive_freezes_apart_from_the_matrices_never_trained():
    freezing = {"attn.A": 0, "attn.B": 0, "ffn1.A": 20, "ffn1.B": 50, "ffn2.A": None}
    assert freezing_line(freezing) == (
        "  froze 2 of 3 trainable projection matrices, the last at step 50; 2 were frozen from the start"
    )
    assert freezing_line({"ffn.A": None}) == "  froze 0 of 1 trainable projection matrices"
