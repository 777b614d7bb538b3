"""Tap resolution and the hook recorder that reads features out of any model.

A tap is named by meaning: ``logits`` (the model's output), ``pre_logits`` (the input of its classifier),
``stage1`` … ``stageN`` (declared by the model, see :mod:`kdzoo.taps.stages`), ``attn:<module path>``
(the attention probabilities of a timm-style attention module) or a plain module path.

Models describe themselves through optional attributes, all paths relative to the model:
``kdzoo_stages`` (list of stage module paths), ``kdzoo_classifier`` (classifier module path),
``kdzoo_module_root`` (a sub-module where bare paths are also looked up, e.g. ``'model'`` for a wrapped
timm model), ``kdzoo_map_layout`` (``'NCHW'`` or ``'NHWC'`` for 4-D outputs), ``kdzoo_num_prefix_tokens``
and ``kdzoo_grid`` (patch grid) for token models.
"""
import difflib
from dataclasses import dataclass

import torch
from mmengine.model import is_model_wrapper

from .feature import Feature, FeatureSpec, token_grid


@dataclass(frozen=True)
class TapTarget:
    module_path: str      # '' is the model itself
    reads: str            # 'output', 'input' or 'attn'


def unwrap(model):
    while is_model_wrapper(model) or hasattr(model, '_fsdp_wrapped_module'):
        model = getattr(model, 'module', None) or model._fsdp_wrapped_module
    return model


def declared_stages(model):
    return list(getattr(model, 'kdzoo_stages', None) or [])


def describe_taps(model):
    """The named taps a model offers, for error messages and inspection."""
    names = ['logits']
    if getattr(model, 'kdzoo_classifier', None):
        names.append('pre_logits')
    names += [f'stage{i + 1}' for i in range(len(declared_stages(model)))]
    return names


def _module_paths(model):
    return [name for name, _ in model.named_modules() if name]


def _find_module_path(model, path):
    modules = dict(model.named_modules())
    if path in modules:
        return path
    root = getattr(model, 'kdzoo_module_root', None)
    if root and f'{root}.{path}' in modules:
        return f'{root}.{path}'
    close = difflib.get_close_matches(path, _module_paths(model), n=3, cutoff=0.6)
    hint = f" Closest module paths: {', '.join(close)}." if close else ''
    raise KeyError(f"Unknown tap {path!r} on {type(model).__name__}. Named taps: "
                   f"{', '.join(describe_taps(model))}, 'attn:<module path>', or any module path.{hint}")


def resolve_tap(model, tap):
    """Turn a tap name into the module whose output (or input) carries it."""
    if tap == 'logits':
        return TapTarget('', 'output')
    if tap == 'pre_logits':
        classifier = getattr(model, 'kdzoo_classifier', None)
        if not classifier:
            raise KeyError(f"{type(model).__name__} declares no classifier (`kdzoo_classifier`), so it has no "
                           f"'pre_logits' tap. Available: {', '.join(describe_taps(model))}")
        return TapTarget(_find_module_path(model, classifier), 'input')
    if tap.startswith('stage') and tap[5:].isdigit():
        stages, index = declared_stages(model), int(tap[5:])
        if not 1 <= index <= len(stages):
            raise KeyError(f"{type(model).__name__} has {len(stages)} stages, so {tap!r} does not exist. "
                           f"Available: {', '.join(describe_taps(model))}")
        return TapTarget(_find_module_path(model, stages[index - 1]), 'output')
    if tap.startswith('attn:'):
        path = _find_module_path(model, tap[5:])
        attention = model.get_submodule(path)
        if not hasattr(attention, 'attn_drop'):
            raise KeyError(f"attention tap {tap!r}: {type(attention).__name__} at {path!r} has no `attn_drop` "
                           "sub-module, so its attention probabilities cannot be read; tap a timm-style "
                           "attention module (e.g. 'attn:blocks.11.attn')")
        return TapTarget(path, 'attn')
    return TapTarget(_find_module_path(model, tap), 'output')


def infer_spec(model, tap, target, tensor):
    """Describe a raw tapped tensor in the canonical form (see :class:`FeatureSpec`)."""
    if not torch.is_tensor(tensor):
        raise TypeError(f"tap {tap!r} ({target.module_path or 'model output'}) produced "
                        f"{type(tensor).__name__}, not a tensor; tap a module that returns one tensor")
    shape = tuple(tensor.shape[1:])
    if target.reads == 'attn':
        return FeatureSpec(tap, 'attn', shape)
    if tensor.dim() == 4:
        if getattr(model, 'kdzoo_map_layout', 'NCHW') == 'NHWC':
            shape = (shape[2], shape[0], shape[1])
        return FeatureSpec(tap, 'map', shape, grid=shape[1:])
    if tensor.dim() == 3:
        hint_prefix = getattr(model, 'kdzoo_num_prefix_tokens', 0)
        hint_grid = getattr(model, 'kdzoo_grid', None)
        for prefix in dict.fromkeys((hint_prefix, 0)):
            grid = token_grid(shape[0], prefix, hint_grid)
            if grid is not None:
                return FeatureSpec(tap, 'tokens', shape, num_prefix=prefix, grid=grid)
        return FeatureSpec(tap, 'tokens', shape)
    if tensor.dim() == 2:
        return FeatureSpec(tap, 'vector', shape)
    raise TypeError(f"tap {tap!r} produced a {tensor.dim()}-D tensor {tuple(tensor.shape)}; kdzoo reads "
                    "maps (B,C,H,W), tokens (B,N,C), vectors (B,C) and attention maps")


def canonical(tensor, spec, nhwc):
    if spec.kind == 'map' and nhwc:
        tensor = tensor.permute(0, 3, 1, 2)
    return Feature(tensor, spec)


class TapRecorder:
    """Owns the forward hooks that read ``taps`` out of one model.

    Hooks are registered once, on the tapped modules only, and store tensors only inside
    :meth:`recording`; :meth:`remove` takes them all off. Shapes are learnt once by :meth:`probe`.
    """

    def __init__(self, model, taps, name='model'):
        self.model = unwrap(model)
        self.name = name
        try:
            self.targets = {tap: resolve_tap(self.model, tap) for tap in dict.fromkeys(taps)}
        except KeyError as error:
            raise KeyError(f"{name}: {error.args[0]}") from None
        self.specs = {}
        self._raw = None
        self._handles = [self._register(tap, target) for tap, target in self.targets.items()]
        self._nhwc = getattr(self.model, 'kdzoo_map_layout', 'NCHW') == 'NHWC'

    def _register(self, tap, target):
        if target.reads == 'attn':
            attention = self.model.get_submodule(target.module_path)
            attention.fused_attn = False  # the fused kernel never materialises the probabilities
            return attention.attn_drop.register_forward_hook(self._store_output(tap))
        module = self.model.get_submodule(target.module_path) if target.module_path else self.model
        if target.reads == 'input':
            return module.register_forward_pre_hook(self._store_input(tap))
        return module.register_forward_hook(self._store_output(tap))

    def _store_output(self, tap):
        def hook(module, args, output):
            if self._raw is not None:
                self._raw[tap] = output[0] if isinstance(output, (tuple, list)) else output
        return hook

    def _store_input(self, tap):
        def hook(module, args):
            if self._raw is not None:
                self._raw[tap] = args[0]
        return hook

    def start(self):
        self._raw = {}

    def stop(self):
        """Stop recording and drop what was recorded (after a forward pass that failed)."""
        self._raw = None

    def collect(self):
        """Stop recording and return ``{tap: Feature}`` for the forward pass(es) since :meth:`start`."""
        raw, self._raw = self._raw, None
        missing = [tap for tap in self.targets if tap not in raw]
        if missing:
            raise RuntimeError(f"taps {missing} of {self.name} were not reached in the forward pass; "
                               "their modules did not run")
        return {tap: canonical(raw[tap], self.specs[tap], self._nhwc) for tap in self.targets}

    @torch.no_grad()
    def probe(self, input_size, device=None):
        """Run one dummy batch of ``input_size`` (C, H, W) and learn every tap's :class:`FeatureSpec`."""
        was_training = self.model.training
        device = device or next(self.model.parameters()).device
        self.model.eval()
        self.start()
        try:
            self.model(torch.zeros(2, *input_size, device=device))
        finally:
            raw, self._raw = self._raw, None
            self.model.train(was_training)
        self.specs = {tap: infer_spec(self.model, tap, self.targets[tap], raw[tap]) for tap in self.targets}
        return self.specs

    def remove(self):
        for handle in getattr(self, '_handles', ()):
            handle.remove()
        self._handles = []

    def __del__(self):
        self.remove()
