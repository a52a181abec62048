"""train.precision=bf16: training, evaluation and prediction compute under bfloat16 autocast, while
what must stay float32 does (weights, gradients, AdamW state, AFLoRA's sensitivity scores and their
averages, the logits the metrics read), and result.json records the precision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from aflora import AFLoraFreezer
from harness import predict
from harness.execution import experiment, lifecycle
from tests.conftest import compose
from tests.test_predict import glue_with_test_splits


def hook_linear_dtypes(model: torch.nn.Module, seen: dict[str, set]) -> None:
    """Record the output dtype of every backbone FFN linear, apart for training and inference."""
    for name, module in model.named_modules():
        if name.endswith("intermediate.dense.base_layer"):
            module.register_forward_hook(lambda m, i, out: seen["train" if m.training else "infer"].add(out.dtype))


class StateDtypes(TrainerCallback):
    """After every optimizer step: the dtypes of AdamW's state and of the freezer's score tensors."""

    def __init__(self, freezer: AFLoraFreezer):
        self.freezer, self.optimizer, self.scores = freezer, set(), set()

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        for param_state in optimizer.state.values():
            self.optimizer |= {v.dtype for v in param_state.values() if torch.is_tensor(v) and v.dim() > 0}
        scorer = self.freezer.scorer
        for store in (scorer.ipt_avg, scorer.unc_avg, scorer.window_sum):
            self.scores |= {t.dtype for t in store.values()}


@pytest.mark.parametrize("precision,compute", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_precision_reaches_training_evaluation_and_prediction(tmp_path, monkeypatch, precision, compute):
    seen, spies, metric_inputs = {"train": set(), "infer": set()}, {}, set()
    build_trainer = experiment.build_trainer

    def spied_build_trainer(model, *args, **kwargs):
        trainer = build_trainer(model, *args, **kwargs)
        hook_linear_dtypes(model, seen)
        freezer = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, AFLoraFreezer))
        spies["state"] = StateDtypes(freezer)
        trainer.add_callback(spies["state"])
        metrics = trainer.compute_metrics
        trainer.compute_metrics = lambda p: metric_inputs.add(np.asarray(p.predictions).dtype) or metrics(p)
        return trainer

    monkeypatch.setattr(experiment, "build_trainer", spied_build_trainer)
    glue = glue_with_test_splits(tmp_path / "glue", ["rte"])
    overrides = ["task=rte", "method=aflora", "method.window=2", "model=tiny-bert", "debug=default"]
    cfg = compose([*overrides, f"data.dir={glue}", f"train.precision={precision}"])
    assert lifecycle.run(cfg, tmp_path / "run") == 0

    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed" and result["config"]["train"]["precision"] == precision
    assert seen == {"train": {compute}, "infer": {compute}}  # the Trainer's evaluation after each epoch too
    state = spies["state"]
    assert state.optimizer == {torch.float32} and state.scores == {torch.float32}
    assert metric_inputs == {np.dtype(np.float32)}  # bf16 logits reach the metrics as float32

    # harness.predict rebuilds the Trainer from the run's config: the same precision, the same metric.
    predicted = {"infer": set(), "train": set()}
    inference_trainer = predict.inference_trainer

    def spied_inference_trainer(model, *args, **kwargs):
        hook_linear_dtypes(model, predicted)
        return inference_trainer(model, *args, **kwargs)

    monkeypatch.setattr(predict, "inference_trainer", spied_inference_trainer)
    assert predict.main([str(tmp_path / "run")]) == 0
    assert predicted["infer"] == {compute}
