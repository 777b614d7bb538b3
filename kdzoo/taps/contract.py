"""The tap contract: one object in which a model says where kdzoo finds its features.

A model declares it as a ``kdzoo_taps`` attribute or returns it from a ``tap_contract()`` method; the
builders (:class:`~kdzoo.models.TimmClassifier`, :class:`~kdzoo.models.MMPretrainClassifier`,
:class:`~kdzoo.models.ImportedModel`) fill it for the models they wrap and accept the same fields as
arguments to override it. Every path is relative to the model that carries the contract; a path may end in
a branch selector (``'blocks.2[1]'``) when its module returns a tuple or list. See docs/taps.md.

The six attributes of earlier releases (``kdzoo_stages``, ``kdzoo_classifier``, ``kdzoo_module_root``,
``kdzoo_map_layout``, ``kdzoo_num_prefix_tokens``, ``kdzoo_grid``) are still read into a contract, with a
DeprecationWarning; they will stop being read in the next release.
"""
import re
import warnings
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch.nn as nn

LAYOUTS = ('NCHW', 'NHWC')
LEGACY_ATTRIBUTES = {'kdzoo_stages': 'stages', 'kdzoo_classifier': 'classifier',
                     'kdzoo_module_root': 'module_root', 'kdzoo_map_layout': 'layout',
                     'kdzoo_num_prefix_tokens': 'prefix_tokens', 'kdzoo_grid': 'grid'}
BRANCH = re.compile(r'^(?P<path>[^\[\]]*)(?P<branches>(\[\d+\])+)$')


def split_branch(path):
    """``'blocks.2[1]'`` → ``('blocks.2', (1,))``; a path without selector → ``(path, ())``."""
    match = BRANCH.match(path)
    if not match:
        return path, ()
    return match['path'], tuple(int(i) for i in re.findall(r'\[(\d+)\]', match['branches']))


@dataclass(frozen=True)
class TapContract:
    """Where a model's features are, declared once and validated when the model is built.

    Args:
        stages: module paths whose outputs are ``stage1`` … ``stageN``, shallow to deep, distinct.
        classifier: path of the final classifier module; its input is the ``pre_logits`` tap.
        prefix_tokens: class/distillation/register tokens that precede the patch tokens of (B, N, C) taps.
        grid: (h, w) patch grid of the token taps (inferred from square token counts when None).
        attention: paths of the token-attention modules, shallow to deep (read by CAKD's teacher side).
        layout: ``'NCHW'`` or ``'NHWC'``: how the model lays out its 4-D outputs.
        module_root: a sub-module under which bare paths are also looked up (``'model'`` for a wrapper).
        stage_channels: the channels each stage must have (timm's ``feature_info``); checked at probe time.
        stages_note: why no stages could be declared (shown when a stage tap is asked for).
    """
    stages: Tuple[str, ...] = ()
    classifier: Optional[str] = None
    prefix_tokens: int = 0
    grid: Optional[Tuple[int, int]] = None
    attention: Tuple[str, ...] = ()
    layout: str = 'NCHW'
    module_root: Optional[str] = None
    stage_channels: Optional[Tuple[int, ...]] = None
    stages_note: str = ''

    def __post_init__(self):
        set_ = object.__setattr__
        if isinstance(self.stages, str) or isinstance(self.attention, str):
            raise TypeError("TapContract: stages and attention are lists of module paths, not one string; "
                            f"got stages={self.stages!r}, attention={self.attention!r}")
        set_(self, 'stages', tuple(self.stages or ()))
        set_(self, 'attention', tuple(self.attention or ()))
        if len(set(self.stages)) != len(self.stages):
            raise ValueError(f"TapContract: stages must be distinct module paths, got {list(self.stages)}; "
                             "pass stages=[...] with one path per stage, shallow to deep")
        if self.layout not in LAYOUTS:
            raise ValueError(f"TapContract: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if not isinstance(self.prefix_tokens, int) or self.prefix_tokens < 0:
            raise ValueError(f"TapContract: prefix_tokens must be an int >= 0, got {self.prefix_tokens!r}")
        if self.grid is not None:
            grid = tuple(int(g) for g in self.grid)
            if len(grid) != 2 or min(grid) < 1:
                raise ValueError(f"TapContract: grid must be (h, w) with h, w >= 1, got {self.grid!r}")
            set_(self, 'grid', grid)
        if self.stage_channels is not None:
            set_(self, 'stage_channels', tuple(int(c) for c in self.stage_channels))
            if len(self.stage_channels) != len(self.stages):
                raise ValueError(f"TapContract: {len(self.stage_channels)} stage_channels for "
                                 f"{len(self.stages)} stages")

    def override(self, **fields):
        """A copy with every field given as not None replaced (builder arguments over detected values)."""
        fields = {name: value for name, value in fields.items() if value is not None}
        if 'stages' in fields:  # channels detected for the automatic stages say nothing about these
            fields.setdefault('stage_channels', None)
            fields.setdefault('stages_note', '')
        return replace(self, **fields)

    def under(self, root):
        """The contract of a module registered as ``root`` inside another: every path gets the prefix."""
        def prefixed(path):
            return f'{root}.{path}' if path else root
        return replace(self, stages=tuple(prefixed(p) for p in self.stages),
                       classifier=prefixed(self.classifier) if self.classifier else None,
                       attention=tuple(prefixed(p) for p in self.attention),
                       module_root=prefixed(self.module_root) if self.module_root else root)

    def validate(self, model):
        """Every declared path names a module of ``model``; an error names the argument that fixes it."""
        for argument, paths in (('stages', self.stages), ('attention', self.attention),
                                ('classifier', (self.classifier,) if self.classifier else ())):
            for path in paths:
                module_path, _ = split_branch(path)
                found = find_module(model, module_path, self.module_root)
                if found is None:
                    raise ValueError(f"{type(model).__name__}: {argument} path {path!r} is not a module of "
                                     f"the model; pass {argument}=... with paths from its module tree:\n"
                                     f"{module_tree(model)}")
                module = model.get_submodule(found)
                if argument != 'attention' and is_container(module):
                    children = ', '.join(f"'{path}.{name}'" for name, _ in list(module.named_children())[:6])
                    raise ValueError(f"{type(model).__name__}: {argument} path {path!r} is a "
                                     f"{type(module).__name__}: its children run, it never does, so nothing "
                                     f"can be read from it; pass {argument}=... naming modules that run "
                                     f"(its children: {children or 'none'})")
        return self


def find_module(model, path, root=None):
    """The full path of ``path`` (or of ``root.path``) in ``model``, or None."""
    modules = dict(model.named_modules())
    for candidate in (path, f'{root}.{path}' if root else None):
        if candidate is not None and candidate in modules:
            return candidate
    return None


def attention_candidates(model):
    """Paths of the modules that look like timm-style attention, shallow to deep: ``num_heads`` and a
    q/k/v ``nn.Linear`` (``qkv``, ``q`` or ``q_proj``). Whether one is token attention is told by behaviour
    when its ``qkv:`` tap is probed."""
    return [name for name, module in model.named_modules()
            if name and hasattr(module, 'num_heads')
            and any(isinstance(getattr(module, p, None), nn.Linear) for p in ('qkv', 'q', 'q_proj'))]


def classifier_heads(model, root=None):
    """``[(path, module), ...]`` when ``model`` (or its ``root`` sub-module) classifies with several heads
    whose logits it combines (timm's ``get_classifier()`` gives a tuple or a container: CrossViT's one head
    per branch, LeViT's head and distillation head; an mmpretrain head with several Linears of its
    ``num_classes`` outputs: Conformer's, DeiT's); [] otherwise."""
    inner = model.get_submodule(root) if root and find_module(model, root) else model
    classifier = inner.get_classifier() if callable(getattr(inner, 'get_classifier', None)) else None
    head = getattr(inner, 'head', None)
    if classifier is None and isinstance(head, nn.Module) and isinstance(getattr(head, 'num_classes', None), int):
        classifier = [m for m in head.modules() if isinstance(m, nn.Linear) and m.out_features == head.num_classes]
        classifier = classifier if len(classifier) > 1 else None
    if isinstance(classifier, (nn.ModuleList, nn.ModuleDict)):
        heads = list(classifier.children())
    elif isinstance(classifier, (tuple, list)):
        heads = [head for head in classifier if isinstance(head, nn.Module)]
    else:
        return []
    paths = {id(module): name for name, module in model.named_modules()}
    return [(paths[id(head)], head) for head in heads if id(head) in paths and not is_container(head)]


def describe_head(module):
    linear = module if isinstance(module, nn.Linear) else \
        next((m for m in module.modules() if isinstance(m, nn.Linear)), None)
    shape = f" {linear.in_features} -> {linear.out_features}" if linear is not None else ''
    return f"{type(module).__name__}{shape}"


def is_container(module):
    """A module without a forward of its own (ModuleList, ModuleDict): its children run, it never does, so
    hooks on it never fire. A ModuleList/ModuleDict subclass with a forward (timm's DenseNet blocks) runs."""
    return type(module).forward is nn.Module.forward


def module_tree(model, depth=2, limit=40):
    """The top levels of ``model``'s module tree, one ``path: Type`` a line, for error messages."""
    lines = []
    for name, module in model.named_modules():
        if name and name.count('.') < depth:
            children = len(list(module.children()))
            more = f' ({children} children)' if children and name.count('.') == depth - 1 else ''
            lines.append(f"  {name}: {type(module).__name__}{more}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"  ... {len(lines) - limit} more"]
    return '\n'.join(lines)


_warned = set()


def contract_of(model):
    """The :class:`TapContract` of ``model``: ``kdzoo_taps``, ``tap_contract()``, the deprecated attributes
    or, when it declares nothing, an empty contract (only ``logits`` and module paths can be tapped)."""
    declared = getattr(model, 'kdzoo_taps', None)
    if declared is None and callable(getattr(model, 'tap_contract', None)):
        declared = model.tap_contract()
    if declared is not None:
        if not isinstance(declared, TapContract):
            raise TypeError(f"{type(model).__name__} declares its taps as {type(declared).__name__}; "
                            "kdzoo_taps / tap_contract() must give a kdzoo.taps.TapContract")
        return declared
    legacy = {field: getattr(model, attribute) for attribute, field in LEGACY_ATTRIBUTES.items()
              if getattr(model, attribute, None) is not None}
    if not legacy:
        return TapContract()
    if type(model) not in _warned:
        _warned.add(type(model))
        warnings.warn(f"{type(model).__name__} declares its taps with {sorted(LEGACY_ATTRIBUTES)} attributes; "
                      "declare one kdzoo.taps.TapContract as `kdzoo_taps` instead (docs/taps.md). The "
                      "attributes are read for one more release.", DeprecationWarning, stacklevel=3)
    return TapContract(**legacy)
