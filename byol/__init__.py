"""byol: BYOL (Grill et al. 2020) self-supervised image representation learning."""

from byol.constants import VERSION as __version__
from byol.encoder_io import load_encoder
from byol.losses import regression_loss
from byol.method import BYOL, Method, MethodOutput, SimCLR
from byol.models import MLP, available_backbones, build_encoder
from byol.optim import build_optimizer, param_groups
from byol.optim.lars import LARS
from byol.schedules import lr_schedule, scaled_lr, tau_schedule

__all__ = [
    "__version__",
    "BYOL",
    "Method",
    "MethodOutput",
    "SimCLR",
    "LARS",
    "MLP",
    "available_backbones",
    "build_encoder",
    "build_optimizer",
    "load_encoder",
    "lr_schedule",
    "param_groups",
    "regression_loss",
    "scaled_lr",
    "tau_schedule",
]
