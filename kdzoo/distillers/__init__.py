"""The distiller interface. The methods themselves live in :mod:`kdzoo.methods` (face ones in
:mod:`kdzoo.face.methods`); their classes are still reachable here for one release (CHANGELOG.md)."""
from kdzoo.utils.moved import moved_attribute

from .base import AdapterNeed, BaseDistiller, shape_error

MOVED = {'CAKD': 'kdzoo.methods', 'CivT': 'kdzoo.methods', 'DIST': 'kdzoo.methods', 'DKD': 'kdzoo.methods',
         'FitNet': 'kdzoo.methods', 'FOFA': 'kdzoo.methods', 'KD': 'kdzoo.methods', 'OFA': 'kdzoo.methods',
         'RKD': 'kdzoo.methods', 'FaceKD': 'kdzoo.face.methods', 'URFM': 'kdzoo.face.methods'}


def __getattr__(name):
    return moved_attribute(__name__, name, MOVED)


__all__ = ['AdapterNeed', 'BaseDistiller', 'shape_error']
