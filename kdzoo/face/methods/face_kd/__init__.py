"""KD on the margin heads' identity logits (docs/methods/face_kd.md)."""
from .distiller import FaceKD

__all__ = ['FaceKD']
