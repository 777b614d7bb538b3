"""Tasks: what a student is trained and evaluated for (:class:`BaseTask`, registry ``kdzoo.registry.TASKS``).

Classification lives here; face recognition's task is in :mod:`kdzoo.face.task`.
"""
from .base import BaseTask, stack_labels
from .classification import ClassificationTask

__all__ = ['BaseTask', 'ClassificationTask', 'stack_labels']
