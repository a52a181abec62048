"""AFLoRA (Liu et al., ACL 2024) as a PEFT method, plus its adaptive-freezing Trainer callback.

``import aflora`` registers the method with peft, so ``get_peft_model(model, AFLoraConfig(...))``,
``save_pretrained``, ``PeftModel.from_pretrained`` (in any process that imported ``aflora``),
``merge_and_unload`` and ``disable_adapter`` work as for peft's own methods.
"""

from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
from peft.utils import register_peft_method

from .clipping import ClipGradNormCallback
from .config import PEFT_TYPE, AFLoraConfig
from .freezing import FREEZER_STATE_FILE, AFLoraFreezer
from .layer import AFLoraLayer, Linear
from .model import AFLoraModel
from .schedule import CubicSchedule, fraction_rule, quantile_rule
from .scoring import SensitivityScorer

__all__ = [
    "FREEZER_STATE_FILE",
    "PEFT_TYPE",
    "AFLoraConfig",
    "AFLoraFreezer",
    "AFLoraLayer",
    "AFLoraModel",
    "ClipGradNormCallback",
    "CubicSchedule",
    "Linear",
    "SensitivityScorer",
    "fraction_rule",
    "quantile_rule",
]

if PEFT_TYPE not in PEFT_TYPE_TO_CONFIG_MAPPING:  # a module reload must not register twice
    register_peft_method(name="aflora", config_cls=AFLoraConfig, model_cls=AFLoraModel, prefix="aflora_")
