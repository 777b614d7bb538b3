"""OFA-KD, Hao et al. 2023 (docs/methods/ofa.md)."""
from .distiller import OFA

__all__ = ['OFA']
