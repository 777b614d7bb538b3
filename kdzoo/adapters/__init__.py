from .afp import AFP
from .base import BaseAdapter
from .civt_tokens import CivTTokens

__all__ = ['AFP', 'BaseAdapter', 'CivTTokens']
