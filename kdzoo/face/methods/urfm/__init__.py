"""URFM + APT, Zhao et al. 2023 (docs/methods/urfm.md): the URFM distiller and the APT prompt adapter of
its teacher."""
from .adapter import APT
from .distiller import URFM

__all__ = ['APT', 'URFM']
