"""The DDP wrapper kdzoo runs DistillModel in."""
from mmengine.model import MMDistributedDataParallel

from kdzoo.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DistillDataParallel(MMDistributedDataParallel):
    """MMDistributedDataParallel whose training step is the wrapped model's own.

    mmengine's wrapper runs its own ``train_step`` and so would bypass ``DistillModel.train_step`` (the
    non-finite guard, several optimisers for discriminators). Here the model's step runs, and its forward
    goes through this wrapper so DDP still synchronises gradients.
    """

    def train_step(self, data, optim_wrapper):
        return self.module.train_step(data, optim_wrapper, wrapper=self)
