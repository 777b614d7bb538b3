"""The face-recognition methods: URFM + APT, and KD on identity logits."""
from .face_kd import FaceKD
from .urfm import APT, URFM

__all__ = ['APT', 'FaceKD', 'URFM']
