"""DIST, Huang et al. 2022 (docs/methods/dist.md)."""
from .distiller import DIST

__all__ = ['DIST']
