"""``AFLoraConfig``: the PEFT configuration of an AFLoRA adapter (docs/method.md, "The adapter"
and "Where the adapters go")."""

from __future__ import annotations

from dataclasses import dataclass, field

from peft.config import PeftConfig

from .peft_type import add_peft_type

# The member is created here, at import, because the config's __post_init__ needs it and peft
# resolves a saved adapter's "peft_type" through the enum before any AFLoRA code runs otherwise.
PEFT_TYPE = add_peft_type("AFLORA")

TRAINABLE_PROJECTIONS = ("ffn", "all", "attention", "none")
BIAS_CHOICES = ("none", "all", "aflora_only")


@dataclass
class AFLoraConfig(PeftConfig):
    """Configuration of an AFLoRA adapter: ``h = W0 x + bias + b * (B (d * (A x)))`` per target linear.

    Args:
        r: rank of the down-projection ``A`` (r x in) and up-projection ``B`` (out x r). The paper uses 4.
        target_modules: module names (suffix match) or a regex of the linear layers to adapt. Use full
            suffixes such as ``attention.output.dense``: a bare ``dense`` also matches ``pooler.dense``.
        trainable_projections: which projection matrices (A, B) are trainable at the start. The rule
            uses the layer's shape, as the reference code does: on the encoders of the paper the
            attention q/k/v/o projections are square (hidden x hidden) and the FFN ones are not.
            ``"ffn"`` (reference code, default): only non-square layers' projections train, the
            square ones are frozen from step 0. ``"all"`` (paper wording), ``"attention"`` (only the
            square ones), ``"none"`` (all frozen: with r=1024 this is ELoRA/VeRA with per-layer random
            matrices).
        d_init: initial value of every entry of ``d`` (length r); 0.1 in the paper and ELoRA.
        b_init: initial value of every entry of ``b`` (length out); 0 makes the adapted model equal
            to the base model at step 0.
        fan_in_fan_out: True if the target stores its weight as (in, out), e.g. GPT-2's ``Conv1D``.
        bias: which biases train: ``"none"``, ``"all"`` or ``"aflora_only"`` (adapted layers only).
        modules_to_save: modules trained and saved besides the adapters, e.g. ``["classifier"]``.
            With ``task_type="SEQ_CLS"`` peft adds the usual classifier names itself.
        layers_to_transform, layers_pattern: restrict the adapters to some layer indices (as in peft).

    A and B are drawn with PyTorch's Kaiming-uniform (a=0, fan-in) from the global RNG, so
    ``transformers.set_seed`` before ``get_peft_model`` makes them reproducible.
    """

    r: int = field(default=4, metadata={"help": "Rank of the projections A (r x in) and B (out x r)."})
    target_modules: list[str] | str | None = field(
        default=None, metadata={"help": "Names (suffix match) or regex of the linear layers to adapt."}
    )
    trainable_projections: str = field(
        default="ffn",
        metadata={"help": f"Which projections train from the start: one of {TRAINABLE_PROJECTIONS}."},
    )
    d_init: float = field(default=0.1, metadata={"help": "Initial value of the vector d (length r)."})
    b_init: float = field(default=0.0, metadata={"help": "Initial value of the vector b (length out)."})
    fan_in_fan_out: bool = field(
        default=False, metadata={"help": "True if the target stores its weight as (in, out) (Conv1D)."}
    )
    bias: str = field(default="none", metadata={"help": f"Trainable biases: one of {BIAS_CHOICES}."})
    modules_to_save: list[str] | None = field(
        default=None, metadata={"help": "Modules trained and saved besides the adapters (the head)."}
    )
    layers_to_transform: list[int] | int | None = field(
        default=None, metadata={"help": "Only adapt the layers with these indices."}
    )
    layers_pattern: list[str] | str | None = field(
        default=None, metadata={"help": "Name of the layer list, used with layers_to_transform."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = PEFT_TYPE
        if isinstance(self.target_modules, list):
            self.target_modules = set(self.target_modules)
        if not self.target_modules:
            raise ValueError(
                "AFLoraConfig.target_modules must name the linear layers to adapt "
                "(a list of name suffixes or a regex); AFLoRA has no per-architecture defaults"
            )
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r <= 0:
            raise ValueError(f"AFLoraConfig.r must be a positive integer, got {self.r!r}")
        if self.trainable_projections not in TRAINABLE_PROJECTIONS:
            raise ValueError(
                f"AFLoraConfig.trainable_projections must be one of {TRAINABLE_PROJECTIONS}, "
                f"got {self.trainable_projections!r}"
            )
        if self.bias not in BIAS_CHOICES:
            raise ValueError(f"AFLoraConfig.bias must be one of {BIAS_CHOICES}, got {self.bias!r}")
        if self.layers_pattern and self.layers_to_transform is None:
            raise ValueError("AFLoraConfig.layers_pattern needs layers_to_transform as well")

    def projections_frozen_at_start(self, in_features: int, out_features: int) -> bool:
        """Whether a layer of this shape starts with its A and B frozen (see ``trainable_projections``)."""
        square = in_features == out_features
        return {
            "all": False,
            "none": True,
            "ffn": square,
            "attention": not square,
        }[self.trainable_projections]
