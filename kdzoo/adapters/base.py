"""The adapter interface: modules that change a model's forward (teacher prompts, student tokens)."""
from contextlib import contextmanager

import torch.nn as nn


class BaseAdapter(nn.Module):
    """Attaches to one model of a :class:`~kdzoo.models.DistillModel` (``'student'`` or a teacher name;
    ``'teacher'`` means the only teacher, so method configs need not know the pair's teacher name).

    An adapter changes the model's forward through hooks or inserted modules it owns, and keeps the wrapped
    model's own state-dict keys intact so pretrained checkpoints still load. Its parameters live in the
    adapter (and so in ``DistillModel.adapters``), not in the model. When an adapter on a teacher has
    trainable parameters, that teacher runs with autograd on (its own weights stay frozen).
    """

    def __init__(self, target='student'):
        super().__init__()
        self.target = target
        self._handles = []

    @property
    def trainable(self):
        return any(p.requires_grad for p in self.parameters())

    def attach(self, model):
        """Install hooks / modules on ``model``; keep handles in ``self._handles``."""
        raise NotImplementedError(f"{type(self).__name__} must implement attach (abstract)")

    def detach(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []


class SwitchablePrompts:
    """For prompt adapters (AFP, APT): prompts can be switched off for one bare teacher pass.

    The adapter sets ``self._enabled = True`` in ``__init__`` and reads it in its ``prompting`` property.
    """

    @contextmanager
    def prompts_disabled(self):
        """Run the teacher bare inside this context (FOFA's un-prompted pass, URFM's prompt anchor)."""
        previous, self._enabled = self._enabled, False
        try:
            yield
        finally:
            self._enabled = previous
