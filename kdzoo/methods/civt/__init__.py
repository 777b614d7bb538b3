"""CivT / Co-advise, Ren et al. 2022 (docs/methods/civt.md): the distiller of the two teachers and the
adapter that gives the student its CONV and INV tokens."""
from .adapter import CivTTokens
from .distiller import CivT

__all__ = ['CivT', 'CivTTokens']
