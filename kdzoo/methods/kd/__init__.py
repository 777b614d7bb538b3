"""KD, Hinton et al. 2015 (docs/methods/kd.md)."""
from .distiller import KD, kd_loss

__all__ = ['KD', 'kd_loss']
