from .base import BaseAdapter

__all__ = ['BaseAdapter']
