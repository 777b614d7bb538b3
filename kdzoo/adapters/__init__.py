from .afp import AFP
from .apt import APT
from .base import BaseAdapter
from .civt_tokens import CivTTokens

__all__ = ['AFP', 'APT', 'BaseAdapter', 'CivTTokens']
