"""BaseTask: what a DistillModel's student is trained and evaluated for.

The core (:class:`~kdzoo.models.DistillModel`) knows how to run a student, its teachers, adapters and
distillers; the task knows what the student's output means. A task supplies

- :meth:`~BaseTask.targets`: the labels of a batch (hard labels for the distillers, and soft labels when the
  batch was mixed);
- :meth:`~BaseTask.loss`: the student's own loss on its output (``task_loss_weight`` scales it);
- :meth:`~BaseTask.predict`: the data samples the evaluation metrics read, for the student or a teacher;
- :meth:`~BaseTask.ddp_ignored_parameters`: parameters DistributedDataParallel must not synchronise
  (each rank holds different values), none by default;
- ``output``: what the model's forward returns (``'logits'`` or ``'embedding'``), for the exported model's
  metadata.

Tasks are registered in :data:`kdzoo.registry.TASKS`; ``DistillModel(task=...)`` names one, and without it
the student's ``kdzoo_task`` attribute does (``'classification'`` when it has none). docs/adding_a_task.md
shows a task of your own.
"""
from abc import ABC, abstractmethod

import torch


def stack_labels(data_samples):
    """Hard labels (B,) and, when the batch was mixed (mixup/cutmix), soft labels (B, K)."""
    hard = torch.cat([sample.gt_label for sample in data_samples])
    if 'gt_score' in data_samples[0]:
        soft = torch.stack([sample.gt_score for sample in data_samples])
        return soft.argmax(1), soft
    return hard, None


class BaseTask(ABC):
    """The task protocol (module docstring). Subclasses implement :meth:`loss` and :meth:`predict`."""

    #: what the model's forward returns: ``'logits'`` or ``'embedding'``
    output = 'logits'

    def targets(self, data_samples):
        """``(labels, soft_labels)`` of a batch: ``labels`` also go to the distillers; ``soft_labels`` is None
        unless the batch was mixed."""
        return stack_labels(data_samples)

    @abstractmethod
    def loss(self, model, output, labels, soft_labels):
        """``{name: scalar loss}`` of ``model`` (the student) for its ``output`` on a batch."""

    @abstractmethod
    def predict(self, model, inputs, data_samples=None):
        """``model``'s predictions for ``inputs``, written into ``data_samples`` (made when None)."""

    def ddp_ignored_parameters(self, distill_model):
        """Qualified names of ``distill_model``'s parameters that DDP must leave alone on every rank."""
        return []

    def __repr__(self):
        options = ', '.join(f'{k}={v!r}' for k, v in vars(self).items())
        return f'{type(self).__name__}({options})'
