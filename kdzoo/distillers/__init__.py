from .base import BaseDistiller, shape_error
from .cakd import CAKD
from .civt import CivT
from .dist import DIST
from .dkd import DKD
from .face_kd import FaceKD
from .fitnet import FitNet
from .fofa import FOFA
from .kd import KD
from .ofa import OFA
from .rkd import RKD
from .urfm import URFM

__all__ = ['BaseDistiller', 'CAKD', 'CivT', 'DIST', 'DKD', 'FaceKD', 'FitNet', 'FOFA', 'KD', 'OFA', 'RKD', 'URFM',
           'shape_error']
