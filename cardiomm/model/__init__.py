"""CardioMM and the methods it is compared with, behind one reconstruction interface."""

from cardiomm.model.baselines import ZeroFilled
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network, reconstructor_from_checkpoint
from cardiomm.model.interface import ReconstructionInput, Reconstructor
from cardiomm.model.network import CardioMMNet, count_parameters
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.model.unet import UNetConfig

__all__ = [
    "CardioMMNet",
    "ModelConfig",
    "NetworkReconstructor",
    "ReconstructionInput",
    "Reconstructor",
    "UNetConfig",
    "ZeroFilled",
    "build_network",
    "count_parameters",
    "reconstructor_from_checkpoint",
]
