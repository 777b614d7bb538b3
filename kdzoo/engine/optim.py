"""An optimiser-wrapper constructor for distillers with their own adversary (CAKD's discriminator).

docs/methods/conventions.md, 'Optimiser scope' ("Optimizer scope"): one optimiser covers the student and every extra trainable module;
the exception is a discriminator, which has its own. ``DistillOptimWrapperConstructor`` builds an mmengine
``OptimWrapperDict`` with

* ``'model'``: what mmengine's ``DefaultOptimWrapperConstructor`` would optimise, minus every sub-module
  named ``discriminator`` (frozen teachers stay in, as in the default path; they never get gradients);
* ``'discriminator'``: the parameters of those sub-modules (left out when the model has none).

Config::

    optim_wrapper = dict(
        constructor='DistillOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9),   # shared keys (type, clip_grad, loss_scale, ...)
        model=dict(...),                                     # optional overrides for 'model'
        discriminator=dict(...),                             # optional overrides for 'discriminator'
        discriminator_lr_mult=0.01)

Each sub-wrapper is the shared keys updated by its own dict (``optimizer`` replaced whole). When the
``discriminator`` dict gives no ``optimizer``, it gets the model's with ``lr × discriminator_lr_mult``
(0.01: the CAKD code's D runs SGD at 0.01 × the student LR with the same momentum and weight decay, docs/methods/cakd.md).
``paramwise_cfg`` (top level or per sub-wrapper) works as in mmengine. A list of ``param_scheduler``
applies to both wrappers (mmengine's rule for ``OptimWrapperDict``), so D follows the student's schedule.
``DistillModel.train_step`` steps the two wrappers (see there).
"""
import copy
from contextlib import contextmanager

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from kdzoo.registry import OPTIM_WRAPPER_CONSTRUCTORS

DISCRIMINATOR = 'discriminator'
OWN_KEYS = ('model', DISCRIMINATOR, 'discriminator_lr_mult')


def discriminator_slots(module):
    """(parent, name) of every outermost sub-module called ``discriminator``."""
    slots = []
    for name, child in module.named_children():
        if name == DISCRIMINATOR:
            slots.append((module, name))
        elif child is not None:
            slots.extend(discriminator_slots(child))
    return slots


def find_discriminators(model):
    return [parent.get_submodule(name) for parent, name in discriminator_slots(model)]


@contextmanager
def discriminators_hidden(model):
    """The model without its discriminators: each slot holds None (so module order is kept) until exit."""
    slots = [(parent, name, parent._modules[name]) for parent, name in discriminator_slots(model)]
    try:
        for parent, name, _ in slots:
            parent._modules[name] = None
        yield model
    finally:
        for parent, name, child in slots:
            parent._modules[name] = child


def scaled_lr(optimizer_cfg, mult):
    optimizer_cfg = copy.deepcopy(optimizer_cfg)
    if 'lr' not in optimizer_cfg:
        raise ValueError("DistillOptimWrapperConstructor: the model optimizer sets no `lr` to scale for the "
                         "discriminator; give `discriminator=dict(optimizer=...)` explicitly")
    optimizer_cfg['lr'] = optimizer_cfg['lr'] * mult
    return optimizer_cfg


def build_wrapper(cfg, module, default_paramwise_cfg):
    cfg = dict(cfg)
    paramwise_cfg = cfg.pop('paramwise_cfg', default_paramwise_cfg)
    return DefaultOptimWrapperConstructor(cfg, paramwise_cfg)(module)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillOptimWrapperConstructor:
    """``{'model': ..., 'discriminator': ...}`` optimiser wrappers (see the module docstring)."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        own = {key: cfg.pop(key) for key in OWN_KEYS if key in cfg}
        shared = cfg
        self.model_cfg = {**shared, **dict(own.get('model') or {})}
        if 'optimizer' not in self.model_cfg:
            raise ValueError("DistillOptimWrapperConstructor: set `optimizer` (top level or in `model`)")
        discriminator_cfg = dict(own.get(DISCRIMINATOR) or {})
        if 'optimizer' not in discriminator_cfg:
            discriminator_cfg['optimizer'] = scaled_lr(self.model_cfg['optimizer'],
                                                       own.get('discriminator_lr_mult', 0.01))
        self.discriminator_cfg = {**shared, **discriminator_cfg}
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model):
        model = model.module if hasattr(model, 'module') else model
        discriminators = find_discriminators(model)
        with discriminators_hidden(model):
            wrappers = dict(model=build_wrapper(self.model_cfg, model, self.paramwise_cfg))
        if discriminators:
            wrappers[DISCRIMINATOR] = build_wrapper(self.discriminator_cfg, nn.ModuleList(discriminators),
                                                    self.paramwise_cfg)
        return OptimWrapperDict(**wrappers)
