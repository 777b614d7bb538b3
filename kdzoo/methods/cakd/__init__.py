"""CAKD, Liu et al. 2022 (docs/methods/cakd.md)."""
from .distiller import CAKD

__all__ = ['CAKD']
