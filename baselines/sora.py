"""SoRA (Ding et al., EMNLP 2023, "Sparse Low-rank Adaptation of Pre-trained Language Models"):
LoRA with a gate vector between its two projections, made sparse during training by a proximal
step; the ranks whose gate reaches zero are pruned.

    delta_h = scaling * W_u (g * (W_d x)),  g in R^r_max,  scaling = alpha / r_max

Built on peft's LoRA: ``get_peft_model(LoraConfig)``, then every LoRA layer gets the gate as
``lora_gate[adapter]`` and a peft LoRA variant (peft's own hook for DoRA and the like) whose
forward puts the gate between ``lora_A`` and ``lora_B`` and whose merge folds it into the weight.
peft saves and loads the gate with the adapter (its name starts with ``lora_``), so the Trainer's
checkpoints, their resume and ``best/`` hold it. A plain ``PeftModel.from_pretrained`` loads A
and B and drops g; ``restore_gates`` puts it back (``load_sora``, the builder's ``load_weights``,
through which ``harness.predict`` reloads a run's ``best/``).

What the official code does (TsinghuaC3I/SoRA, commit 7ca93d5; docs/method.md, "SoRA"), and here:

- The gate starts as ``torch.randn(1, r)`` (src/lora.py, ``LowRankLinear``), not ones: the
  adapter's output is zero at the start either way, B being zero. ``method.gate_init: ones`` is
  the other choice.
- An L1 penalty ``sparse_lambda * sum|g| / (number of gate entries)`` joins the loss
  (src/trainer.py, ``compute_loss``). Here ``SoraGates`` adds its gradient,
  ``sparse_lambda * sign(g) / n``, to the gates' gradients before the harness clips (the clipping
  callback runs after the method's), which is the clipped gradient the official loss gives; the
  logged training loss leaves the penalty out.
- The gates train in an optimizer of their own (src/sparse_optimizer.py, ``SparseAdamW``, a
  transformers ``AdamW``: betas (0.9, 0.999), eps 1e-6, no weight decay) at ``sparse_lr``
  (default: the learning rate), with its own linear warm-up schedule over the same steps. Here
  they are one more parameter group of the harness's optimizer (``train.optimizer``, whose groups
  for everything else are ``harness.execution.optim.parameter_groups``'), eps 1e-6, no weight decay, at
  ``method.gate_lr`` (null: ``train.lr``), on the Trainer's schedule; so the optimizer's state,
  the gates' moments included, is in every checkpoint.
- After each Adam step the gates are thresholded by ``sparse_lambda_2`` (xi), a constant: not
  multiplied by the learning rate (src/sparse_optimizer.py, the file run_glue.py imports;
  src/sparse_optimizer_multiply_lr.py would multiply it by the group's lr). Its three lines
  subtract xi from gates above xi, add it to those below -xi, then zero those within (-xi, xi)
  *after* the shift, so a gate that lands in (xi, 2 xi) goes to zero instead of to g - xi.
  ``method.threshold: reference`` does exactly that (the default: what the official code runs);
  ``soft`` is the paper's proximal operator, sign(g) * max(|g| - xi, 0).
- OpenDelta freezes everything but the delta modules (and the names ``layer_norm`` maps to), the
  classifier included: ``method.train_head: false`` (``freeze_head``), which the DeBERTaV3 recipes
  set; the MiniLM study trains the head, as it does for every method.
- The sparsifying scheduler (``lambda_schedule``: further 15-epoch rounds after training with xi
  raised step by step, at the exhausted, zero learning rate) serves the paper's
  memorisation/generalisation analysis, not its GLUE table; it is not implemented.

The trainable count (``retained_parameters``) is that of the pruned model: per module,
kept ranks x (in + out) plus the kept gate entries, head excluded, as AdaLoRA counts its triplets
here. The official ``compute_trainable_sparse_param`` (src/util.py) counts differently: every
trainable parameter but the gates (whatever else its config leaves unfrozen), less 2 x hidden size
per zero gate, even in the FFN modules, whose ranks hold hidden + 4 x hidden.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import MISSING
from peft import PeftModel, get_peft_model
from peft.tuners.lora.layer import LoraLayer, LoraVariant
from peft.utils import SAFETENSORS_WEIGHTS_NAME
from peft.utils.other import transpose
from safetensors import safe_open
from torch import nn

from baselines.lora import LoraSettings, lora_config
from harness.config.schema import check_choice
from harness.core.errors import ConfigError
from harness.execution.methods import BuildContext, MethodBuild, MethodCallback, OptimizerFactory, register_method
from harness.execution.optim import OPTIMIZERS, parameter_groups

logger = logging.getLogger(__name__)

GATE = "lora_gate"  # the gate's ParameterDict on each LoRA layer; "lora_" makes peft save it
GATE_EPS = 1e-6  # transformers AdamW's default, which the official SparseAdamW keeps
THRESHOLDS = ("reference", "soft")
GATE_INITS = ("randn", "ones")
GATE_GROUP = "sora_gates"  # marks the gates' parameter group (saved with the optimizer's state)


# --- the gated LoRA layer ------------------------------------------------------------------------


def gate_of(layer: LoraLayer, adapter: str) -> nn.Parameter:
    return getattr(layer, GATE)[adapter]


def gated_delta_weight(layer: LoraLayer, adapter: str) -> torch.Tensor:
    """scaling * B diag(g) A, in the base weight's layout."""
    a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
    delta = (b * gate_of(layer, adapter)) @ a
    return transpose(delta, layer.fan_in_fan_out) * layer.scaling[adapter]


class GatedLoraVariant(LoraVariant):
    """peft's LoRA layer with SoRA's gate between ``lora_A`` and ``lora_B`` (forward and merges)."""

    @staticmethod
    def init(module: LoraLayer, adapter_name: str, **kwargs: Any) -> None:
        """Nothing: ``add_gates`` creates the gate once peft has built the layer."""

    @staticmethod
    def merge_safe(module: LoraLayer, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        return orig_weight + gated_delta_weight(module, active_adapter).to(orig_weight.dtype)

    @staticmethod
    def merge_unsafe(module: LoraLayer, active_adapter: str, orig_weight: torch.Tensor) -> None:
        orig_weight.data += gated_delta_weight(module, active_adapter).to(orig_weight.dtype)

    @staticmethod
    def unmerge(module: LoraLayer, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        return orig_weight - gated_delta_weight(module, active_adapter).to(orig_weight.dtype)

    @staticmethod
    def forward(
        module: LoraLayer, active_adapter: str, x: torch.Tensor, result: torch.Tensor, **kwargs
    ) -> torch.Tensor:
        lora_A, lora_B = module.lora_A[active_adapter], module.lora_B[active_adapter]
        dropout, scaling = module.lora_dropout[active_adapter], module.scaling[active_adapter]
        return result + lora_B(lora_A(dropout(x)) * gate_of(module, active_adapter)) * scaling


def lora_layers(peft_model: nn.Module) -> list[tuple[str, LoraLayer]]:
    """(name below the tuner, layer) of every LoRA layer of ``peft_model``'s active adapter."""
    adapter = peft_model.active_adapter
    return [
        (name, module)
        for name, module in peft_model.base_model.model.named_modules()
        if isinstance(module, LoraLayer) and adapter in module.lora_A
    ]


def add_gates(peft_model: nn.Module, init: str = "randn") -> list[tuple[str, LoraLayer]]:
    """Give every LoRA layer of the active adapter a trainable gate of size r and the gated forward.

    ``init``: ``randn`` draws the gates from N(0, 1) with torch's global generator (the official
    init; seeded by the run like the rest of the adapter), ``ones`` starts them at 1.
    """
    adapter = peft_model.active_adapter
    layers = lora_layers(peft_model)
    for _, layer in layers:
        if not hasattr(layer, GATE):
            layer.register_module(GATE, nn.ParameterDict())
            # Listed like DoRA's magnitude vector, so peft's set_adapter and friends manage it.
            layer.adapter_layer_names = (*layer.adapter_layer_names, GATE)
        weight = layer.lora_A[adapter].weight
        r = layer.r[adapter]
        values = torch.randn(r) if init == "randn" else torch.ones(r)
        getattr(layer, GATE)[adapter] = nn.Parameter(values.to(device=weight.device, dtype=weight.dtype))
        layer.lora_variant[adapter] = GatedLoraVariant()
    return layers


def restore_gates(peft_model: nn.Module, folder: str | Path) -> bool:
    """Put the gates of a SoRA adapter saved in ``folder`` back on ``peft_model``, the plain LoRA
    ``PeftModel.from_pretrained`` made of it; True if the adapter had gates (else nothing changes)."""
    path = Path(folder) / SAFETENSORS_WEIGHTS_NAME
    if not path.is_file():
        return False
    with safe_open(path, "pt") as f:
        if not any(GATE in key.split(".") for key in f.keys()):
            return False
    add_gates(peft_model, init="ones")  # the values come from the file
    peft_model.load_adapter(folder, adapter_name=peft_model.active_adapter, is_trainable=True)
    return True


def load_sora(backbone: nn.Module, folder: Path) -> nn.Module:
    """A saved SoRA adapter on ``backbone``, gates included, trainable as in training (the method's
    ``load_weights``, ``harness.execution.methods.WeightsLoader``)."""
    model = PeftModel.from_pretrained(backbone, folder, is_trainable=True)
    restore_gates(model, folder)
    return model


def gate_parameters(peft_model: nn.Module) -> list[nn.Parameter]:
    adapter = peft_model.active_adapter
    return [gate_of(layer, adapter) for _, layer in lora_layers(peft_model)]


# --- sparsity: the proximal step, the penalty's gradient, the retained ranks ----------------------


@torch.no_grad()
def threshold_(gate: torch.Tensor, xi: float, rule: str = "reference") -> None:
    """The gates' proximal step after the optimizer's, in place (see the module docstring)."""
    if xi <= 0:
        return
    if rule == "soft":
        gate.copy_(gate.sign() * (gate.abs() - xi).clamp_min(0))
    elif rule == "reference":  # src/sparse_optimizer.py, SparseAdamW.step, line by line
        gate[gate > xi] -= xi
        gate[gate < -xi] += xi
        gate[gate.abs() < xi] = 0.0
    else:
        raise ConfigError(f"sora: method.threshold {rule!r} is not one of {list(THRESHOLDS)}")


def _threshold_gate_groups(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """A step post-hook: the proximal step on every gate group, with the group's own xi and rule."""
    for group in optimizer.param_groups:
        if group.get(GATE_GROUP):
            for gate in group["params"]:
                threshold_(gate, group["threshold"], group["threshold_rule"])


def sora_optimizer(cfg: Any) -> OptimizerFactory:
    """The harness's optimizer (``train.optimizer``, ``harness.execution.optim.parameter_groups`` for every
    other parameter) plus a group for the gates, thresholded after every step."""

    def build(model: nn.Module, train_cfg: Any, head_modules: Any) -> torch.optim.Optimizer:
        gates = [g for g in gate_parameters(model) if g.requires_grad]
        gate_ids = {id(g) for g in gates}
        groups = [
            {**group, "params": [p for p in group["params"] if id(p) not in gate_ids]}
            for group in parameter_groups(model, train_cfg, head_modules)
        ]
        groups = [g for g in groups if g["params"]]
        lr = cfg.gate_lr if cfg.gate_lr is not None else train_cfg.lr
        groups.append(
            {
                "params": gates,
                "lr": lr,
                "weight_decay": 0.0,
                "eps": GATE_EPS,
                GATE_GROUP: True,
                "threshold": float(cfg.sparse_lambda_2),
                "threshold_rule": cfg.threshold,
            }
        )
        optimizer = OPTIMIZERS[train_cfg.optimizer](groups)
        optimizer.register_step_post_hook(_threshold_gate_groups)
        return optimizer

    return build


def retained_ranks(layers: list[tuple[str, LoraLayer]], adapter: str) -> dict[str, int]:
    """Module name -> ranks whose gate is not zero (r_max before any gate reached zero)."""
    return {name: int(torch.count_nonzero(gate_of(layer, adapter))) for name, layer in layers}


def retained_parameters(layers: list[tuple[str, LoraLayer]], adapter: str) -> int:
    """The pruned model's adapter parameters, head excluded: kept ranks x (in + out + 1) per module."""
    return sum(
        int(torch.count_nonzero(gate_of(layer, adapter))) * (layer.in_features + layer.out_features + 1)
        for _, layer in layers
    )


class SoraGates(MethodCallback):
    """Adds the L1 penalty's gradient to the gates before clipping; counts and reports the retained ranks.

    Stateless across a resume: the gates are adapter weights and their moments optimizer state,
    both in the Trainer's checkpoints.
    """

    def __init__(self, peft_model: nn.Module, sparse_lambda: float):
        self.adapter = peft_model.active_adapter
        self.layers = lora_layers(peft_model)  # fixed once built: walked once
        self.sparse_lambda = float(sparse_lambda)
        self.gates = [gate_of(layer, self.adapter) for _, layer in self.layers]
        self.n_entries = sum(g.numel() for g in self.gates)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.sparse_lambda > 0:
            self.add_penalty_gradient()

    @torch.no_grad()
    def add_penalty_gradient(self) -> None:
        """d/dg of sparse_lambda * sum|g| / n: sparse_lambda * sign(g) / n (zero at g = 0, as torch.abs)."""
        coef = self.sparse_lambda / self.n_entries
        for gate in self.gates:
            if not gate.requires_grad:
                continue
            if gate.grad is None:
                gate.grad = torch.zeros_like(gate)
            gate.grad.add_(gate.sign(), alpha=coef)

    def ranks(self) -> dict[str, int]:
        return retained_ranks(self.layers, self.adapter)

    def trainable_parameters(self, model: nn.Module | None = None) -> int:
        """The build's ``count_trainable``: the retained ranks' parameters (module docstring)."""
        return retained_parameters(self.layers, self.adapter)

    def result_fields(self) -> dict[str, Any]:
        return {"ranks": self.ranks()}


def freeze_head(peft_model: nn.Module) -> None:
    """Leave the classifier at its initial weights, as the official code does: OpenDelta's
    ``freeze_module`` freezes everything outside its ``unfrozen_modules`` ("deltas", "layer_norm",
    "final_layer_norm" in config/lora_config.json), and the classifier is none of them
    (docs/method.md, "SoRA"). It stays in ``modules_to_save``, so the saved adapter still holds
    the random classifier it predicts with."""
    for name, param in peft_model.named_parameters():
        if ".modules_to_save." in name:
            param.requires_grad_(False)


@dataclass
class SoraSettings(LoraSettings):
    """``conf/method/sora.yaml``: LoRA's keys (r is r_max) plus the gates'."""

    sparse_lambda: float = MISSING
    sparse_lambda_2: float = MISSING
    gate_lr: Optional[float] = MISSING  # noqa: UP045 (omegaconf reads Optional)
    gate_init: str = MISSING
    threshold: str = MISSING
    train_head: bool = MISSING  # false: the classifier keeps its initial weights (freeze_head)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("sparse_lambda", "sparse_lambda_2"):
            if getattr(self, key) < 0:
                raise ConfigError(f"method.{key} = {getattr(self, key)} must be >= 0")
        if self.gate_lr is not None and self.gate_lr <= 0:
            raise ConfigError(f"method.gate_lr = {self.gate_lr} must be positive (or null: train.lr)")
        check_choice("method.threshold", self.threshold, THRESHOLDS)
        check_choice("method.gate_init", self.gate_init, GATE_INITS)


@register_method("sora", settings=SoraSettings, load_weights=load_sora)
def build_sora(model: nn.Module, cfg: SoraSettings, ctx: BuildContext) -> MethodBuild:
    peft_model = get_peft_model(model, lora_config(cfg, ctx))  # r = r_max, alpha, dropout, the head trained
    layers = add_gates(peft_model, cfg.gate_init)
    logger.info(
        "sora: %d modules at r_max %d, lambda %g, xi %g (%s threshold)",
        len(layers),
        cfg.r,
        cfg.sparse_lambda,
        cfg.sparse_lambda_2,
        cfg.threshold,
    )
    if not cfg.train_head:
        freeze_head(peft_model)
    gates = SoraGates(peft_model, cfg.sparse_lambda)
    return MethodBuild(
        model=peft_model,
        callbacks=[gates],
        optimizer=sora_optimizer(cfg),
        count_trainable=gates.trainable_parameters,
    )
