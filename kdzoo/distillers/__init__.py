from .base import BaseDistiller, shape_error
from .dkd import DKD
from .fitnet import FitNet
from .kd import KD
from .ofa import OFA

__all__ = ['BaseDistiller', 'DKD', 'FitNet', 'KD', 'OFA', 'shape_error']
