"""RKD, Park et al. 2019 (docs/methods/rkd.md)."""
from .distiller import RKD

__all__ = ['RKD']
