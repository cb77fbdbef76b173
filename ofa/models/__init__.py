"""Static (non-elastic) networks and their building blocks."""

from .layers import ConvBNAct, InvertedResidual, SqueezeExcite, activation
from .mobilenetv3 import MobileNetV3
from .transformer import Transformer

__all__ = ["ConvBNAct", "InvertedResidual", "SqueezeExcite", "activation", "MobileNetV3", "Transformer"]
