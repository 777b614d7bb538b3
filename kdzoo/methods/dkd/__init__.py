"""DKD, Zhao et al. 2022 (docs/methods/dkd.md)."""
from .distiller import DKD

__all__ = ['DKD']
