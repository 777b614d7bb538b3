"""The adapter interface. The adapters themselves live with their methods in :mod:`kdzoo.methods` (APT in
:mod:`kdzoo.face.methods`); their classes are still reachable here for one release (CHANGELOG.md)."""
from kdzoo.utils.moved import moved_attribute

from .base import BaseAdapter, SwitchablePrompts
from .interfaces import AdapterInterface, FeedbackPrompts, PromptOutputs, TokenHeads

MOVED = {'AFP': 'kdzoo.methods', 'CivTTokens': 'kdzoo.methods', 'APT': 'kdzoo.face.methods'}


def __getattr__(name):
    return moved_attribute(__name__, name, MOVED)


__all__ = ['AdapterInterface', 'BaseAdapter', 'FeedbackPrompts', 'PromptOutputs', 'SwitchablePrompts', 'TokenHeads']
