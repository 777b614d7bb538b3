"""Classifiers built from timm, mmpretrain or a user's import path, each describing its taps.

Every builder returns an ``nn.Module`` whose forward maps images to logits and which carries the tap
attributes read by :mod:`kdzoo.taps.recorder` (stages, classifier, token layout).
"""
import importlib

import torch.nn as nn

from kdzoo.registry import MODELS
from kdzoo.taps.stages import timm_stage_paths


def import_object(path):
    """``'package.module:attr'`` or ``'package.module.attr'`` → the object."""
    module_name, _, attr = path.partition(':') if ':' in path else path.rpartition('.')
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(f"cannot import {module_name!r} for model {path!r}: {error}") from None
    if not hasattr(module, attr):
        raise AttributeError(f"module {module_name!r} has no {attr!r} (from model path {path!r})")
    return getattr(module, attr)


def default_classifier_path(model):
    if hasattr(model, 'get_classifier'):
        classifier = model.get_classifier()
        for name, module in model.named_modules():
            if module is classifier and name:
                return name
    for name in ('head.fc', 'fc', 'head', 'classifier'):
        try:
            if isinstance(model.get_submodule(name), nn.Linear):
                return name
        except AttributeError:
            continue
    return None


def token_hints(model):
    """Prefix-token count and patch grid of a timm token model, if it is one."""
    embed = getattr(model, 'patch_embed', None) or getattr(model, 'stem', None)
    grid = getattr(embed, 'grid_size', None)
    return getattr(model, 'num_prefix_tokens', 0), tuple(grid) if grid is not None else None


class TappableClassifier(nn.Module):
    """Wraps a classifier ``model`` and declares its taps; the forward is the model's own."""

    kdzoo_module_root = 'model'

    def __init__(self, model, stages=None, num_stages=4, classifier=None):
        super().__init__()
        self.model = model
        own_stages = getattr(model, 'kdzoo_stages', None)
        if stages is None and own_stages:
            stages = list(own_stages)
        elif stages is None and getattr(model, 'feature_info', None):
            stages = timm_stage_paths(model, num_stages)
        self.kdzoo_stages = [f'model.{p}' for p in stages or []]
        classifier = classifier or default_classifier_path(model)
        self.kdzoo_classifier = f'model.{classifier}' if classifier else None
        self.kdzoo_map_layout = getattr(model, 'kdzoo_map_layout', getattr(model, 'output_fmt', 'NCHW'))
        self.kdzoo_num_prefix_tokens, self.kdzoo_grid = token_hints(model)

    def forward(self, x):
        return self.model(x)


@MODELS.register_module()
class TimmClassifier(TappableClassifier):
    """Any timm model by name, ``pretrained=False`` by default (no hub is assumed reachable).

    ``model_name`` may also be the import path of a timm model class or function (e.g.
    ``'timm.models.mlp_mixer.MlpMixer'``) for arguments that ``timm.create_model`` does not pass on.
    """

    def __init__(self, model_name, pretrained=False, stages=None, num_stages=4, classifier=None, **kwargs):
        import timm
        if '.' in model_name or ':' in model_name:
            model = import_object(model_name)(**kwargs)
        else:
            if not timm.is_model(model_name):
                from kdzoo.registry import unknown_name_error
                raise unknown_name_error('timm model', model_name, timm.list_models(),
                                         "list them with timm.list_models('*pattern*')")
            model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
        super().__init__(model, stages, num_stages, classifier)


@MODELS.register_module()
class ImportedModel(TappableClassifier):
    """A user's ``nn.Module`` class (or factory) by import path, built with ``kwargs``."""

    def __init__(self, path, stages=None, num_stages=4, classifier=None, **kwargs):
        super().__init__(import_object(path)(**kwargs), stages, num_stages, classifier)


@MODELS.register_module()
class MMPretrainClassifier(TappableClassifier):
    """An mmpretrain classifier, from a model config dict or an mmpretrain model name.

    Its forward returns the head's logits (``mode='tensor'``). ResNet-style backbones declare their
    stages automatically; for others pass ``stages`` as module paths relative to the classifier.
    """

    def __init__(self, model, stages=None, classifier=None):
        import mmpretrain
        from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
        # mmpretrain's own scope, whatever scope the Runner made the default
        net = mmpretrain.get_model(model, pretrained=False) if isinstance(model, str) \
            else MMPRETRAIN_MODELS.build(dict(model, _scope_=model.get('_scope_', 'mmpretrain')))
        if stages is None and hasattr(net.backbone, 'res_layers'):
            stages = [f'backbone.{name}' for name in net.backbone.res_layers]
        super().__init__(net, stages, classifier=classifier or ('head.fc' if hasattr(net.head, 'fc') else None))

    def forward(self, x):
        return self.model(x, mode='tensor')


def build_model(cfg):
    """A model from a config dict, or an ``nn.Module`` passed as it is."""
    return cfg if isinstance(cfg, nn.Module) else MODELS.build(cfg)
