"""FitNet, Romero et al. 2015 (docs/methods/fitnet.md)."""
from .distiller import FitNet

__all__ = ['FitNet']
