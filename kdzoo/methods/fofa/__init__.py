"""FOFA / PAT (docs/methods/fofa.md): the FOFA distiller on the student side and the AFP prompt adapter on
the teacher side."""
from .adapter import AFP
from .distiller import FOFA

__all__ = ['AFP', 'FOFA']
