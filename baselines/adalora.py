"""AdaLoRA (Zhang et al., ICLR 2023) through peft's ``AdaLoraConfig``, plus the hook peft leaves out.

peft's AdaLoRA only prunes ranks when someone calls ``update_and_allocate(global_step)`` after
every optimizer step, while the gradients are still there; without it the run silently trains a
plain SVD-LoRA at the initial rank. ``AdaLoraAllocator`` is that call as a TrainerCallback, and
it also keeps what the Trainer would otherwise lose or mishandle:

- the allocator's running averages (not in Trainer checkpoints): saved next to each checkpoint
  as ``adalora_allocator.pt`` and read back by ``load_state``;
- the rank pattern: peft stores it in the adapter config, and once it is there every
  ``save_pretrained`` writes the adapter *cut down* to the kept ranks. A Trainer checkpoint saved
  mid-run would then no longer load into the freshly built (full-rank) model on resume. So the
  callback keeps the pattern itself and hands it to peft only for the duration of each call;
  checkpoints stay full-size, with the pruned singular values at zero (the same function).

The orthogonal regulariser is added by ``AdaLoraModel.forward`` to ``outputs.loss``: a Trainer
that recomputes the loss from the logits (label smoothing, ``compute_loss_func``) would drop it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import MISSING
from peft import AdaLoraConfig, get_peft_model
from peft.tuners.adalora import AdaLoraLayer

from harness.config.lengths import Length
from harness.config.schema import check_count
from harness.core.errors import ConfigError
from harness.execution.methods import BuildContext, MethodBuild, MethodCallback, MethodSettings, register_method
from harness.storage.checkpoints import saved_checkpoint

logger = logging.getLogger(__name__)

ALLOCATOR_FILE = "adalora_allocator.pt"


@dataclass
class AdaLoraSettings(MethodSettings):
    """``conf/method/adalora.yaml``. ``tinit`` / ``tfinal`` are lengths with their unit
    (harness/config/lengths.py): steps (the AdaLoRA paper's Table 8, used by the DeBERTaV3 recipes)
    or a percentage of the run's steps, so short runs (MiniLM on CPU, debug) keep the same shape of schedule."""

    init_r: int = MISSING
    target_r: int = MISSING
    lora_alpha: int = MISSING
    lora_dropout: float = MISSING
    beta1: float = MISSING
    beta2: float = MISSING
    orth_reg_weight: float = MISSING
    deltaT: int = MISSING  # noqa: N815 (peft's name)
    tinit: str = MISSING
    tfinal: str = MISSING

    def __post_init__(self) -> None:
        check_count("method.init_r", self.init_r, 1, 65_536)
        check_count("method.target_r", self.target_r, 1, self.init_r)
        check_count("method.lora_alpha", self.lora_alpha, 1, 65_536)
        for key in ("beta1", "beta2"):
            if not 0 < getattr(self, key) < 1:
                raise ConfigError(f"method.{key} = {getattr(self, key)} must lie in (0, 1)")
        check_count("method.deltaT", self.deltaT, 1, 1_000_000)
        if self.orth_reg_weight < 0:
            raise ConfigError(f"method.orth_reg_weight = {self.orth_reg_weight} must be >= 0")
        self.lengths  # noqa: B018 (both lengths parse: checked here, before the run)

    @property
    def lengths(self) -> tuple[Length, Length]:
        """(tinit, tfinal) as lengths."""
        return Length.parse("method.tinit", self.tinit), Length.parse("method.tfinal", self.tfinal)


def resolve_schedule(cfg: AdaLoraSettings, ctx: BuildContext) -> tuple[int, int]:
    """(tinit, tfinal) in optimizer steps."""
    # Rounded to the nearest step: kept as every existing AdaLoRA run computed it.
    tinit, tfinal = (ctx.steps(length, rounding="nearest") for length in cfg.lengths)
    if tinit >= ctx.total_steps - tfinal:
        raise ConfigError(
            f"adalora: method.tinit = {tinit} and method.tfinal = {tfinal} steps leave no rank-budgeting phase "
            f"in a run of total_steps = {ctx.total_steps} (need tinit < total_steps - tfinal). For a "
            "shorter run than the recipe's, give them as percentages: method.tinit=15% method.tfinal=45%."
        )
    return tinit, tfinal


class AdaLoraAllocator(MethodCallback):
    """Runs peft's rank allocation after every optimizer step and reports the ranks it kept."""

    def __init__(self, peft_model: torch.nn.Module):
        self.tuner = peft_model.base_model  # peft's AdaLoraModel
        self.adapter = self.tuner.trainable_adapter_name
        self.rank_pattern: dict[str, list[bool]] | None = None  # lora_E name -> kept triplets
        self._layer_list: list[tuple[str, AdaLoraLayer]] | None = None

    @property
    def config(self) -> AdaLoraConfig:
        return self.tuner.peft_config[self.adapter]

    # --- training hooks -------------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        # The cubic budget schedule is laid out over config.total_step; a Trainer that runs a
        # different number of steps would end the run mid-schedule or sit at the target budget.
        if state.max_steps != self.config.total_step:
            raise ConfigError(
                f"adalora: the Trainer will run {state.max_steps} optimizer steps but the rank schedule "
                f"was built for total_step = {self.config.total_step}"
            )

    def on_optimizer_step(self, args, state, control, **kwargs):
        # After optimizer.step() and before zero_grad(): peft's sensitivity is |p * grad| with the
        # step's gradient (clipped by then, as in AdaLoRA's own HF-Trainer fork). global_step still
        # counts the steps completed before this one: the 0-based loop index of peft's example.
        self.step(state.global_step)

    def step(self, global_step: int) -> None:
        config = self.config
        config.rank_pattern = self.rank_pattern
        try:
            self.tuner.update_and_allocate(global_step)
        finally:
            # Keep the pattern out of the adapter config between calls (see the module docstring).
            self.rank_pattern, config.rank_pattern = config.rank_pattern, None

    # --- accounting -----------------------------------------------------------------------

    def adapted_modules(self) -> list[tuple[str, AdaLoraLayer]]:
        # The adapted modules never change (peft masks ranks instead of resizing): walk the model once.
        if self._layer_list is None:
            self._layer_list = [
                (name, module)
                for name, module in self.tuner.model.named_modules()
                if isinstance(module, AdaLoraLayer) and self.adapter in module.lora_A
            ]
        return self._layer_list

    def ranks(self) -> dict[str, int]:
        """Module name -> number of singular triplets currently kept (init_r before any pruning)."""
        ranks = {}
        for name, module in self.adapted_modules():
            kept = (self.rank_pattern or {}).get(f"{name}.lora_E.{self.adapter}")
            ranks[name] = int(sum(kept)) if kept is not None else module.r[self.adapter]
        return ranks

    def trainable_parameters(self, model: torch.nn.Module | None = None) -> int:
        """Adapter parameters of the kept triplets, head excluded: a rank-r module holds r right
        singular vectors (lora_A, r x in), r left ones (lora_B, out x r) and r values (lora_E).
        The build's ``count_trainable``: the masked ranks still have ``requires_grad``."""
        ranks = self.ranks()
        return sum(ranks[name] * (m.in_features + m.out_features + 1) for name, m in self.adapted_modules())

    def result_fields(self) -> dict:
        config = self.config
        return {
            "ranks": self.ranks(),
            "adalora_schedule": {
                "total_step": config.total_step,
                "tinit": config.tinit,
                "tfinal": config.tfinal,
                "deltaT": config.deltaT,
                "initial_budget": self.tuner.rankallocator.init_bgt,
                "target_budget": self.tuner.rankallocator.target_bgt,
            },
        }

    # --- checkpointing --------------------------------------------------------------------

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        ckpt = saved_checkpoint(args, state)
        if ckpt is not None:
            torch.save(self.state_dict(), ckpt / ALLOCATOR_FILE)

    def state_dict(self) -> dict:
        allocator = self.tuner.rankallocator
        cpu = lambda d: {k: v.detach().cpu() for k, v in d.items()}  # noqa: E731
        return {
            "ipt": cpu(allocator.ipt),
            "exp_avg_ipt": cpu(allocator.exp_avg_ipt),
            "exp_avg_unc": cpu(allocator.exp_avg_unc),
            "rank_pattern": self.rank_pattern,
        }

    def load_state(self, checkpoint_dir: str | Path) -> None:
        """Restore the allocator of a checkpoint before the Trainer resumes from it."""
        path = Path(checkpoint_dir) / ALLOCATOR_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: this AdaLoRA checkpoint cannot resume its rank allocation")
        state = torch.load(path, map_location="cpu", weights_only=True)
        params = dict(self.tuner.model.named_parameters())
        allocator = self.tuner.rankallocator
        for key in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
            setattr(allocator, key, {n: t.to(params[n].device) for n, t in state[key].items()})
        self.rank_pattern = state["rank_pattern"]


@register_method("adalora", settings=AdaLoraSettings)
def build_adalora(model: torch.nn.Module, cfg: AdaLoraSettings, ctx: BuildContext) -> MethodBuild:
    tinit, tfinal = resolve_schedule(cfg, ctx)
    config = AdaLoraConfig(
        task_type="SEQ_CLS",
        target_modules=list(ctx.target_modules),
        modules_to_save=list(ctx.head_modules),
        init_r=cfg.init_r,
        target_r=cfg.target_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        beta1=cfg.beta1,
        beta2=cfg.beta2,
        orth_reg_weight=cfg.orth_reg_weight,
        tinit=tinit,
        tfinal=tfinal,
        deltaT=cfg.deltaT,
        total_step=ctx.total_steps,  # from the harness's own step count, never guessed
    )
    peft_model = get_peft_model(model, config)
    logger.info(
        "adalora: %d modules, rank %d -> %d on average; schedule tinit=%d tfinal=%d deltaT=%d of %d steps",
        len(peft_model.base_model.rankallocator.name_set),
        cfg.init_r,
        cfg.target_r,
        tinit,
        tfinal,
        cfg.deltaT,
        ctx.total_steps,
    )
    allocator = AdaLoraAllocator(peft_model)
    return MethodBuild(model=peft_model, callbacks=[allocator], count_trainable=allocator.trainable_parameters)
