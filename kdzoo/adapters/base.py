"""The adapter interface: modules that change a model's forward (teacher prompts, student tokens)."""
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
