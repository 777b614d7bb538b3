"""Classifiers built from timm, mmpretrain or a user's import path, each describing its taps.

Every builder returns an ``nn.Module`` whose forward maps images to logits and which carries a validated
:class:`~kdzoo.taps.TapContract` (stages, classifier, token layout) as ``kdzoo_taps``. All three accept the
contract's fields as arguments that override what is detected (docs/taps.md).
"""
import importlib
import re
from dataclasses import replace

import torch
import torch.nn as nn

from kdzoo.registry import MODELS
from kdzoo.taps.contract import TapContract, attention_candidates, contract_of, is_container
from kdzoo.taps.stages import plain_stage_blocks, timm_stage_plan
from .weights import load_weights


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
    """The path of ``model``'s final classifier: timm's ``get_classifier()``, mmpretrain's head Linear, or a
    Linear named ``head.fc``/``fc``/``head``/``classifier``; None when there is no single runnable one."""
    modules = dict(model.named_modules())
    if hasattr(model, 'get_classifier'):
        classifier = model.get_classifier()
        for name, module in modules.items():
            if module is classifier and name and not is_container(module):
                return name
    for name in ('head.fc', 'head.layers.head', 'fc', 'head', 'classifier'):
        if isinstance(modules.get(name), nn.Linear):
            return name
    return None


def _first_attribute(model, names):
    for _, module in model.named_modules():
        for name in names:
            value = getattr(module, name, None)
            if value is not None and not isinstance(value, nn.Module):
                return value
    return None


def token_hints(model):
    """Prefix-token count and patch grid of a token model (timm's or mmpretrain's ViT family), if it is one.

    The prefix count is the first ``num_prefix_tokens`` (timm) or ``num_extra_tokens`` (mmpretrain) found
    top-down; the grid is that of the first patch embedding (``grid_size`` / ``init_out_size``).
    """
    prefix = _first_attribute(model, ('num_prefix_tokens', 'num_extra_tokens')) or 0
    grid = None
    for name, module in model.named_modules():
        if name.rpartition('.')[2] in ('patch_embed', 'stem'):
            grid = getattr(module, 'grid_size', None) or getattr(module, 'init_out_size', None)
            if grid is not None:
                break
    return int(prefix), tuple(grid) if grid is not None else None


def detected_contract(model, num_stages=4):
    """The contract kdzoo finds for ``model`` (paths relative to it) and, when its stages must come from
    timm's ``forward_intermediates``, ``(indices, channels)`` of those intermediates."""
    own = contract_of(model)
    stages, channels, intermediates, note = list(own.stages), None, None, ''
    if not stages:
        if getattr(model, 'feature_info', None):
            stages, channels, intermediates, note = timm_stage_plan(model, num_stages)
            stages = stages or []
        else:
            note = (f"{type(model).__name__} declares no stages and has no timm feature_info to find them "
                    "from")
    prefix, grid = token_hints(model)
    layout = own.layout if own != TapContract() else getattr(model, 'output_fmt', 'NCHW')
    contract = replace(own, stages=tuple(stages), stage_channels=tuple(channels) if channels and stages else None,
                       stages_note=note, classifier=own.classifier or default_classifier_path(model),
                       prefix_tokens=own.prefix_tokens or prefix, grid=own.grid or grid,
                       attention=own.attention or tuple(attention_candidates(model)),
                       layout=layout if layout in ('NCHW', 'NHWC') else 'NCHW', module_root=None)
    return contract, (intermediates, channels) if intermediates else None


STAGE_ATTRIBUTES = ('res_layers', 'layers', 'stages', 'blocks', 'encoder', 'network', 'features')
NUMBERED_STAGE = re.compile(r'^(?P<kind>stage|layer|blocks)_?(?P<index>\d+)$')


def mmpretrain_stage_sequence(backbone):
    """Names of the backbone's stage (or block) modules in order: the first of ``STAGE_ATTRIBUTES`` that
    lists module names (ResNet's ``res_layers``, MobileNetV2's ``layers``) or holds a ModuleList /
    Sequential of them, else its numbered children (``stage1``…, ``blocks1``…, ``stage_1``…)."""
    for name in STAGE_ATTRIBUTES:
        value = getattr(backbone, name, None)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            return [v for v in value if isinstance(getattr(backbone, v, None), nn.Module)]
        if isinstance(value, (nn.ModuleList, nn.Sequential)) and len(value):
            return [f'{name}.{child}' for child, _ in value.named_children()]
    numbered = {}
    for child, _ in backbone.named_children():
        match = NUMBERED_STAGE.match(child)
        if match:
            numbered.setdefault(match['kind'], []).append((int(match['index']), child))
    longest = max(numbered.values(), key=len, default=[])
    return [child for _, child in sorted(longest)]


def runnable_path(backbone, path):
    """``path``, or for a container stage (a ModuleList of blocks that never runs itself) the path of the
    last module inside it that runs."""
    module = backbone.get_submodule(path)
    while is_container(module) and len(list(module.children())):
        child, module = list(module.named_children())[-1]
        path = f'{path}.{child}'
    return path


def mmpretrain_stages(backbone, num_stages=4):
    """Stage paths (relative to the classifier) of an mmpretrain backbone, or [] when none is recognised.

    Up to ``num_stages`` modules are all stages; a longer sequence (a ViT-family stack, or a hierarchical
    one listed block by block) is cut with the plain block rule of :mod:`kdzoo.taps.stages`.
    """
    paths = mmpretrain_stage_sequence(backbone)
    if len(paths) > num_stages or (hasattr(backbone, 'num_extra_tokens') and len(paths) == num_stages):
        paths = [paths[i - 1] for i in plain_stage_blocks(len(paths))]
    return [f'backbone.{runnable_path(backbone, path)}' for path in paths[-num_stages:]]


class TappableClassifier(nn.Module):
    """Wraps a classifier ``model`` and declares its :class:`~kdzoo.taps.TapContract` (docs/taps.md).

    The contract is detected (see :func:`detected_contract`), then every argument given overrides its
    field: ``stages`` (module paths of the wrapped model, a branch selector allowed: ``'blocks.2[1]'``),
    ``classifier``, ``prefix_tokens``, ``grid``, ``attention`` and ``layout``. When timm's feature_info
    names stage modules that cannot be hooked (HRNet, Twins), the stages are the model's own
    ``forward_intermediates``, routed through the identity modules ``stage_outputs.<i>``.
    """

    kdzoo_module_root = 'model'

    def __init__(self, model, stages=None, num_stages=4, classifier=None, prefix_tokens=None, grid=None,
                 attention=None, layout=None):
        super().__init__()
        self.model = model
        detected, self._intermediates = detected_contract(model, num_stages)
        if stages is not None:
            self._intermediates = None
        contract = detected.override(stages=stages, classifier=classifier, prefix_tokens=prefix_tokens,
                                     grid=grid, attention=attention, layout=layout).under('model')
        if self._intermediates is not None:
            self._intermediates, channels = self._intermediates
            self.stage_outputs = nn.ModuleList(nn.Identity() for _ in self._intermediates)
            contract = replace(contract, stages=tuple(f'stage_outputs.{i}' for i in range(len(channels))),
                               stage_channels=tuple(channels))
        self.kdzoo_taps = contract.validate(self)

    def forward(self, x):
        if self._intermediates is None:
            return self.model(x)
        final, intermediates = self.model.forward_intermediates(x, indices=list(self._intermediates))
        for identity, feature in zip(self.stage_outputs, intermediates):
            identity(feature)
        return self.model.forward_head(final)

    # Read-only aliases of the contract's fields, for code written against the attributes of earlier releases.
    kdzoo_stages = property(lambda self: list(self.kdzoo_taps.stages))
    kdzoo_classifier = property(lambda self: self.kdzoo_taps.classifier)
    kdzoo_num_prefix_tokens = property(lambda self: self.kdzoo_taps.prefix_tokens)
    kdzoo_grid = property(lambda self: self.kdzoo_taps.grid)
    kdzoo_map_layout = property(lambda self: self.kdzoo_taps.layout)


@MODELS.register_module()
class TimmClassifier(TappableClassifier):
    """Any timm model by name, ``pretrained=False`` by default (no hub is assumed reachable).

    ``model_name`` may also be the import path of a timm model class or function (e.g.
    ``'timm.models.mlp_mixer.MlpMixer'``) for arguments that ``timm.create_model`` does not pass on.
    """

    def __init__(self, model_name, pretrained=False, stages=None, num_stages=4, classifier=None, prefix_tokens=None,
                 grid=None, attention=None, layout=None, **kwargs):
        import timm
        if '.' in model_name or ':' in model_name:
            model = import_object(model_name)(**kwargs)
        else:
            if not timm.is_model(model_name):
                from kdzoo.registry import unknown_name_error
                raise unknown_name_error('timm model', model_name, timm.list_models(),
                                         "list them with timm.list_models('*pattern*')")
            model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
        super().__init__(model, stages, num_stages, classifier, prefix_tokens, grid, attention, layout)


@MODELS.register_module()
class ImportedModel(TappableClassifier):
    """A user's ``nn.Module`` class (or factory) by import path, built with ``kwargs``; it may declare its
    taps with a ``kdzoo_taps`` :class:`~kdzoo.taps.TapContract` (or ``tap_contract()``), see docs/taps.md."""

    def __init__(self, path, stages=None, num_stages=4, classifier=None, prefix_tokens=None, grid=None,
                 attention=None, layout=None, **kwargs):
        super().__init__(import_object(path)(**kwargs), stages, num_stages, classifier, prefix_tokens, grid,
                         attention, layout)


@MODELS.register_module()
class MMPretrainClassifier(TappableClassifier):
    """An mmpretrain classifier, from a model config dict or an mmpretrain model name.

    Its forward returns the head's logits (``mode='tensor'``); a head that gives one logit tensor per
    classifier (Conformer's CNN and transformer heads) gives their mean, as timm's multi-head models do.
    Stages are found by :func:`mmpretrain_stages` (the modules the backbone lists in ``res_layers`` /
    ``layers`` / ``stages`` / ``blocks`` ..., or its numbered ``stage1``… children; a long sequence is cut
    with the plain block rule of :mod:`kdzoo.taps.stages`); prefix tokens (``num_extra_tokens``) and the
    patch grid come from the backbone; the classifier is the head's Linear (``head.fc`` or
    ``head.layers.head``). The arguments override any of these, with paths relative to the mmpretrain
    classifier (e.g. ``'backbone.layers.3'``).
    """

    def __init__(self, model, stages=None, num_stages=4, classifier=None, prefix_tokens=None, grid=None,
                 attention=None, layout=None):
        import mmpretrain
        from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
        # mmpretrain's own scope, whatever scope the Runner made the default
        pretrained = []
        if not isinstance(model, str):
            model, pretrained = take_pretrained_init_cfgs(model)
        net = mmpretrain.get_model(model, pretrained=False) if isinstance(model, str) \
            else MMPRETRAIN_MODELS.build(dict(model, _scope_=model.get('_scope_', 'mmpretrain')))
        for part, init_cfg in pretrained:  # mmengine would load them only in init_weights, which never runs here
            load_weights(net.get_submodule(part) if part else net, init_cfg['checkpoint'],
                         prefix=pretrained_prefix(init_cfg))
        if stages is None:
            stages = mmpretrain_stages(net.backbone, num_stages) or None
        super().__init__(net, stages, num_stages, classifier, prefix_tokens, grid, attention, layout)

    def forward(self, x):
        logits = self.model(x, mode='tensor')
        if isinstance(logits, (tuple, list)) and all(torch.is_tensor(t) and t.shape == logits[0].shape
                                                     for t in logits):
            return torch.stack(tuple(logits)).mean(0)  # one logit tensor per head (Conformer): their mean
        return logits


def take_pretrained_init_cfgs(model):
    """``(model without them, [(part, init_cfg)])``: the ``init_cfg=dict(type='Pretrained', ...)`` of an
    mmpretrain model config and of its backbone, neck and head, taken out so that kdzoo's safe loader
    (:func:`~kdzoo.models.weights.load_weights`, ``weights_only=True``) loads them right after the build."""
    model = dict(model)
    found = []
    for part in ('', 'backbone', 'neck', 'head'):
        owner = model if not part else model.get(part)
        if not isinstance(owner, dict) or not isinstance(owner.get('init_cfg'), dict):
            continue
        if owner['init_cfg'].get('type') != 'Pretrained':
            continue
        if not owner['init_cfg'].get('checkpoint'):
            raise ValueError(f"MMPretrainClassifier: init_cfg of {part or 'the model'} is Pretrained without a "
                             "checkpoint; name the weights file with checkpoint=")
        owner = dict(owner)
        found.append((part, owner.pop('init_cfg')))
        if part:
            model[part] = owner
        else:
            model = owner
    return model, found


def pretrained_prefix(init_cfg):
    """mmengine's ``Pretrained`` ``prefix='backbone'`` reads the keys under ``backbone.``."""
    prefix = init_cfg.get('prefix')
    return None if prefix is None else prefix if prefix.endswith('.') else prefix + '.'


def build_model(cfg):
    """A model from a config dict, or an ``nn.Module`` passed as it is."""
    return cfg if isinstance(cfg, nn.Module) else MODELS.build(cfg)
