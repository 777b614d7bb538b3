from .mnist import EmbeddedMNIST  # noqa: F401
from . import face  # noqa: F401
