"""Every distillation method of kdzoo, one package each: its distiller and, where it has one, its adapter.

Importing this package registers them in ``kdzoo.registry.DISTILLERS`` and ``ADAPTERS``. The face-recognition
methods (URFM + APT, face KD) live with the rest of face recognition in :mod:`kdzoo.face`.
"""
from .cakd import CAKD
from .civt import CivT, CivTTokens
from .dist import DIST
from .dkd import DKD
from .fitnet import FitNet
from .fofa import AFP, FOFA
from .kd import KD
from .ofa import OFA
from .rkd import RKD

__all__ = ['AFP', 'CAKD', 'CivT', 'CivTTokens', 'DIST', 'DKD', 'FitNet', 'FOFA', 'KD', 'OFA', 'RKD']
