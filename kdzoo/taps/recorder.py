"""Tap resolution and the hook recorder that reads features out of any model.

A tap is named by meaning: ``logits`` (the model's output), ``pre_logits`` (the input of its classifier),
``stage1`` … ``stageN`` (declared by the model's :class:`~kdzoo.taps.TapContract`), ``attn:<module path>``
(the attention probabilities of a timm-style attention module), ``qkv:<module path>`` (the q, k, v an
attention module hands to ``F.scaled_dot_product_attention``) or a plain module path. A path may select
one branch of a module that returns a tuple or list: ``'blocks.2[1]'``.

Tap forms (the ``attn:``/``qkv:`` prefixes) and tap kinds (map / tokens / vector / attention) are
registries: :func:`register_tap_prefix` and :func:`register_tap_kind` add new ones without touching
:func:`resolve_tap` or :func:`infer_spec`.
"""
import difflib
import re
from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from mmengine.model import is_model_wrapper

from .contract import (attention_candidates, classifier_heads, contract_of, describe_head, find_module, is_container,
                       module_tree, split_branch)
from .feature import Feature, FeatureSpec, token_grid
from .input_check import input_size_error


@dataclass(frozen=True)
class TapTarget:
    module_path: str      # '' is the model itself
    reads: str            # 'output', 'input', 'attn' or 'qkv'
    branches: Tuple[int, ...] = ()


def unwrap(model):
    while is_model_wrapper(model) or hasattr(model, '_fsdp_wrapped_module'):
        model = getattr(model, 'module', None) or model._fsdp_wrapped_module
    return model


def declared_stages(model):
    return list(contract_of(model).stages)


def describe_taps(model):
    """The named taps a model offers, for error messages and inspection."""
    contract = contract_of(model)
    names = ['logits'] + (['pre_logits'] if contract.classifier else [])
    return names + [f'stage{i + 1}' for i in range(len(contract.stages))]


def _find_module_path(model, path):
    found = find_module(model, path, contract_of(model).module_root)
    if found is not None:
        return found
    paths = [name for name, _ in model.named_modules() if name]
    close = difflib.get_close_matches(path, paths, n=3, cutoff=0.6)
    hint = f" Closest module paths: {', '.join(close)}." if close else ''
    raise KeyError(f"Unknown tap {path!r} on {type(model).__name__}. Named taps: "
                   f"{', '.join(describe_taps(model))}, 'attn:<module path>', or any module path.{hint}")


def _module_target(model, path, reads='output'):
    module_path, branches = split_branch(path)
    return TapTarget(_find_module_path(model, module_path), reads, branches)


# ------------------------------------------------------------------------------------ tap forms
TAP_PREFIXES = {}


def register_tap_prefix(prefix):
    """Register ``resolve(model, rest) -> TapTarget`` for taps written ``'<prefix><rest>'``."""
    def register(resolve):
        TAP_PREFIXES[prefix] = resolve
        return resolve
    return register


@register_tap_prefix('attn:')
def _resolve_attention_probabilities(model, rest):
    path = _find_module_path(model, rest)
    attention = model.get_submodule(path)
    if not hasattr(attention, 'attn_drop'):
        raise KeyError(f"attention tap 'attn:{rest}': {type(attention).__name__} at {path!r} has no `attn_drop` "
                       "sub-module, so its attention probabilities cannot be read; tap a timm-style "
                       "attention module (e.g. 'attn:blocks.11.attn')")
    return TapTarget(path, 'attn')


@register_tap_prefix('qkv:')
def _resolve_attention_qkv(model, rest):
    return TapTarget(_find_module_path(model, rest), 'qkv')


PRE_LOGITS_READERS = ("the 'pre_logits' tap is read by ofa (unless student_width= / teacher_width= are given), "
                      "rkd (unless student_tap= / teacher_tap= name another tap) and cakd's cls term")


def no_classifier_message(model, contract):
    """Why ``model`` has no 'pre_logits' tap, and the argument that gives it one when one can."""
    available = f"Available: {', '.join(describe_taps(model))}"
    heads = classifier_heads(model, contract.module_root)
    if len(heads) < 2:
        return (f"{type(model).__name__} declares no classifier, so it has no 'pre_logits' tap; pass "
                "classifier='<module path of its final Linear>' to the model (or declare it in its TapContract). "
                f"{available}")
    shown = ', '.join(f"{path!r} ({describe_head(head)})" for path, head in heads)
    root = f'{contract.module_root}.' if contract.module_root else ''
    last = heads[-1][0][len(root):] if heads[-1][0].startswith(root) else heads[-1][0]  # the argument's path
    return (f"{describe_model(model)} has no single classifier: it combines the logits of {len(heads)} heads "
            f"({shown}), so it has no 'pre_logits' tap ({PRE_LOGITS_READERS}). Pass classifier={last!r} to "
            "the model to read the input of that one head as 'pre_logits': all of the pre-logit feature when "
            "the heads share their input (LeViT), one branch's feature when each head has its own (CrossViT). "
            f"{available}")


def resolve_tap(model, tap):
    """Turn a tap name into the module whose output (or input) carries it."""
    contract = contract_of(model)
    if tap == 'logits':
        return TapTarget('', 'output')
    if tap == 'pre_logits':
        if not contract.classifier:
            raise KeyError(no_classifier_message(model, contract))
        return _module_target(model, contract.classifier, 'input')
    if tap.startswith('stage') and tap[5:].isdigit():
        stages, index = contract.stages, int(tap[5:])
        if not 1 <= index <= len(stages):
            why = f" ({contract.stages_note})" if contract.stages_note and not stages else ''
            raise KeyError(f"{type(model).__name__} has {len(stages)} stages{why}, so {tap!r} does not exist; "
                           "pass stages=[...] (module paths, shallow to deep) to the model, or ask the method only "
                           "for stages it has (its stages= / student_stage= argument). Available: "
                           f"{', '.join(describe_taps(model))}. Top of its module tree:\n{module_tree(model)}")
        return _module_target(model, stages[index - 1])
    for prefix, resolve in TAP_PREFIXES.items():
        if tap.startswith(prefix):
            return resolve(model, tap[len(prefix):])
    return _module_target(model, tap)


# ------------------------------------------------------------------------------------ tap kinds
TAP_KINDS = {}


def register_tap_kind(name):
    """Register ``describe(tap, target, tensor, contract) -> FeatureSpec | None`` (None: not this kind).

    Kinds are tried in registration order; the first that answers describes the tap.
    """
    def register(describe):
        TAP_KINDS[name] = describe
        return describe
    return register


@register_tap_kind('attn')
def _attention_kind(tap, target, tensor, contract):
    if target.reads == 'attn':
        return FeatureSpec(tap, 'attn', tuple(tensor.shape[1:]))
    return None


@register_tap_kind('map')
def _map_kind(tap, target, tensor, contract):
    if tensor.dim() != 4:
        return None
    shape = tuple(tensor.shape[1:])
    if contract.layout == 'NHWC':
        shape = (shape[2], shape[0], shape[1])
    return FeatureSpec(tap, 'map', shape, grid=shape[1:])


@register_tap_kind('tokens')
def _tokens_kind(tap, target, tensor, contract):
    if tensor.dim() != 3:
        return None
    shape = tuple(tensor.shape[1:])
    # the declared prefix first; then none; then one class token (N - 1 square, N not: ViT-style models)
    for prefix in dict.fromkeys((contract.prefix_tokens, 0, 1)):
        grid = token_grid(shape[0], prefix, contract.grid)
        if grid is not None:
            return FeatureSpec(tap, 'tokens', shape, num_prefix=prefix, grid=grid)
    return FeatureSpec(tap, 'tokens', shape)


@register_tap_kind('vector')
def _vector_kind(tap, target, tensor, contract):
    return FeatureSpec(tap, 'vector', tuple(tensor.shape[1:])) if tensor.dim() == 2 else None


class Branches(tuple):
    """A tuple/list output recorded without a branch selector; probing refuses it."""


def describe_branches(value):
    return ', '.join(f"[{i}] {tuple(v.shape) if torch.is_tensor(v) else type(v).__name__}"
                     for i, v in enumerate(value))


def infer_spec(model, tap, target, tensor):
    """Describe a raw tapped tensor in the canonical form (see :class:`FeatureSpec`)."""
    where = target.module_path or 'model output'
    if isinstance(tensor, Branches):
        if not target.module_path:
            raise TypeError(f"tap {tap!r}: the model's forward returns {len(tensor)} outputs: "
                            f"{describe_branches(tensor)}; kdzoo reads its logits as one tensor. Wrap the model so "
                            "that its forward returns one logit tensor (ImportedModel of a module that picks or "
                            "averages them), or pass it as an nn.Module that does")
        raise TypeError(f"tap {tap!r} ({where}) returns {len(tensor)} branches: {describe_branches(tensor)}; "
                        f"kdzoo does not pick one for you. Select one with '{where}[i]' (e.g. "
                        f"'{where}[{len(tensor) - 1}]'), also in stages=[...]")
    if isinstance(tensor, AttentionCall):
        return tensor.spec(model, tap, target)
    if not torch.is_tensor(tensor):
        raise TypeError(f"tap {tap!r} ({where}) produced {type(tensor).__name__}, not a tensor; "
                        f"tap a module that returns one tensor{other_module_hint(tap)}")
    contract = contract_of(model)
    for describe in TAP_KINDS.values():
        spec = describe(tap, target, tensor, contract)
        if spec is not None:
            return spec
    raise TypeError(f"tap {tap!r} ({where}) produced a {tensor.dim()}-D tensor {tuple(tensor.shape)}; kdzoo reads "
                    f"maps (B,C,H,W), tokens (B,N,C), vectors (B,C) and attention maps ({', '.join(TAP_KINDS)}): "
                    f"tap a module whose output is one of these{other_module_hint(tap)}")


def other_module_hint(tap):
    """How to point a named tap at another module: stages through the model's ``stages=``."""
    if re.match(r'stage\d+\b', tap):   # a stage tap, or a method's reading of one ('stage2 input (...)')
        return "; for a stage, pass stages=[...] (such module paths, shallow to deep) to the model"
    if tap == 'pre_logits':
        return "; pass classifier='<path of the final Linear>' to the model"
    return ''


def canonical(tensor, spec, nhwc):
    if isinstance(tensor, AttentionCall):
        tensor = tensor.qkv
    if spec.kind == 'map' and nhwc:
        tensor = tensor.permute(0, 3, 1, 2)
    return Feature(tensor, spec)


def select_branch(output, branches, tap):
    for index in branches:
        if not isinstance(output, (tuple, list)) or index >= len(output):
            kind = f"{len(output)} branches" if isinstance(output, (tuple, list)) else "one tensor"
            raise IndexError(f"tap {tap!r} selects branch [{index}], but the module returns {kind}")
        output = output[index]
    return branches_or_tensor(output)


def branches_or_tensor(output):
    """A module's tuple/list output as :class:`Branches` (probing refuses them unselected), except one
    tensor returned with its shape (mmpretrain's Swin / DaViT / MViT stages give ``(x, hw_shape)``): that
    tensor is the feature. Anything else is returned as it is."""
    if not isinstance(output, (tuple, list)):
        return output
    tensors = [value for value in output if torch.is_tensor(value)]
    if len(tensors) == 1 and all(torch.is_tensor(value) or is_shape(value) for value in output):
        return tensors[0]
    return Branches(output)


def is_shape(value):
    return value is None or isinstance(value, int) or (
        isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value))


# ------------------------------------------------------------------------------------ attention q, k, v
@dataclass
class AttentionCall:
    """What one attention module handed to ``F.scaled_dot_product_attention``: q, k, v laid out as timm's
    ``qkv`` output (B, N, 3·heads·d), with the shapes that tell token attention from other kinds."""
    qkv: torch.Tensor
    q_shape: Tuple[int, ...]
    k_shape: Tuple[int, ...]
    input_shape: Tuple[int, ...]
    block_shape: Tuple[int, ...] = ()   # the input of the module that calls the attention (its block)
    window: int = None                  # that block's ``window_size``, if it has one
    batch: int = None

    def spec(self, model, tap, target, alternatives=None):
        """The tokens' :class:`FeatureSpec`; a ValueError when this is not token-to-token attention, naming
        ``alternatives`` (paths of the model's modules that are) or saying that the model has none."""
        problem = self.not_token_attention()
        if problem:
            module = type(model.get_submodule(target.module_path)).__name__
            found = (f"tap {tap!r}: {module} at {target.module_path!r} is not token-to-token attention: {problem} "
                     f"(input {self.input_shape}, q {self.q_shape}, k {self.k_shape}). Token attention (what CAKD "
                     "reads) gives probabilities (B, heads, N, N) over the N tokens of each image")
            raise ValueError(f"{found}. {attention_advice(model, alternatives)}")
        return _tokens_kind(tap, target, self.qkv, contract_of(model))

    def not_token_attention(self):
        batch, tokens = self.input_shape[0], self.input_shape[1] if len(self.input_shape) == 3 else None
        if len(self.input_shape) != 3:
            return (f"its input is {len(self.input_shape)}-D {self.input_shape}, not tokens (B, N, C) "
                    "(an NHWC map or a convolutional attention)")
        if self.batch is not None and self.q_shape[0] != self.batch:
            return (f"it attends within {self.q_shape[0]} groups for a batch of {self.batch} images "
                    "(windowed, unfolded or partitioned attention)")
        if self.batch is not None and batch != self.batch:
            return f"its input holds {batch} sequences for a batch of {self.batch} images (windowed tokens)"
        if self.q_shape[-2] != tokens:
            return (f"its queries run over {self.q_shape[-2]} positions, not the {tokens} tokens "
                    "(channel attention such as XCA, or class attention)")
        if self.k_shape[-2] != tokens:
            return f"its keys are {self.k_shape[-2]} pooled positions, not the {tokens} tokens (spatial reduction)"
        image_tokens = self.block_tokens()
        if image_tokens is not None and image_tokens != tokens:
            window = f" (its block's window_size is {self.window})" if self.window else ''
            how = ("a window padded beyond the token grid" if tokens > image_tokens
                   else "a window that covers part of the token grid")
            return (f"windowed attention: it attends over {tokens} tokens at a time, but its block's input "
                    f"{self.block_shape} holds {image_tokens} tokens per image{window}: {how}, not global "
                    "token attention")
        return None

    def block_tokens(self):
        """Tokens per image at the input of the attention's block: (B, N, C) tokens, or an NHWC / NCHW map
        with the attention's channels; None when that input is not per image or not recognisable."""
        shape, channels = self.block_shape, self.input_shape[-1]
        if len(shape) < 3 or shape[0] != self.batch:
            return None
        if len(shape) == 3 and shape[2] == channels:
            return shape[1]
        if len(shape) == 4 and shape[3] == channels:
            return shape[1] * shape[2]
        if len(shape) == 4 and shape[1] == channels:
            return shape[2] * shape[3]
        return None


def attention_advice(model, alternatives):
    """Which modules to read token attention from instead, or that the model has none."""
    if alternatives:
        shown = ', '.join(repr(path) for path in alternatives[-3:])
        return (f"The model's token-attention modules (deepest last): {shown}; pass "
                f"teacher_attention={alternatives[-1]!r} or another of them")
    return (f"{describe_model(model)} has no global token attention that kdzoo can read: none of its attention "
            "modules hands token-to-token q, k, v over each image's tokens to F.scaled_dot_product_attention at "
            "this input size (they attend within windows, over channels or from the class token only, or compute "
            "attention without that call), so no teacher_attention= can help and CAKD cannot read its Q/K/V. Use "
            "a teacher with global token attention, e.g. a plain ViT / DeiT (model_name='deit_tiny_patch16_224')")


def describe_model(model):
    """``'TimmClassifier of TinyVit'`` for a wrapper, else the model's class name."""
    root = contract_of(model).module_root
    inner = model.get_submodule(root) if root and find_module(model, root) else None
    return f"{type(model).__name__} of {type(inner).__name__}" if inner is not None else type(model).__name__


SDPA_ATTRIBUTE = 'scaled_dot_product_attention'  # mmpretrain's attention keeps the function it calls here


class SDPACapture:
    """Pre/post forward hooks that catch the first ``F.scaled_dot_product_attention`` call of a module,
    whether it calls the function through ``F`` (timm) or through the reference it keeps as its own
    ``scaled_dot_product_attention`` attribute (mmpretrain's ``MultiheadAttention``, set at build time)."""

    def __init__(self, recorder, tap, module, block=None):
        self.recorder, self.tap, self.module, self.block = recorder, tap, module, block
        self._original = None
        self._own = None   # the module's own reference, while it is replaced
        self._block_shape = ()
        if hasattr(module, 'fused_attn'):
            module.fused_attn = True  # the path that calls F.scaled_dot_product_attention

    def before_block(self, block, args):
        """Remember the block's input: its tokens per image tell a padded window from global attention."""
        if self.recorder._raw is not None and self.tap not in self.recorder._raw and args \
                and torch.is_tensor(args[0]):
            self._block_shape = tuple(args[0].shape)

    def before(self, module, args, kwargs=None):
        if self.recorder._raw is None:
            return
        x = args[0] if args else next(iter((kwargs or {}).values()), None)
        input_shape = tuple(x.shape) if torch.is_tensor(x) else ()
        self._original = F.scaled_dot_product_attention
        F.scaled_dot_product_attention = self._capturing(self._original, input_shape)
        own = vars(module).get(SDPA_ATTRIBUTE)
        if callable(own):
            self._own = own
            setattr(module, SDPA_ATTRIBUTE, self._capturing(own, input_shape))

    def _capturing(self, original, input_shape):
        """``original`` (an SDPA function), recording the q, k, v of the first call while recording."""
        def capture(q, k, v, *rest, **options):
            if self.recorder._raw is not None and self.tap not in self.recorder._raw and q.dim() == 4:
                b, h, n, d = q.shape
                qkv = torch.stack((q, k, v), 0).permute(1, 3, 0, 2, 4).reshape(b, n, 3 * h * d) \
                    if k.shape == q.shape and v.shape[:3] == q.shape[:3] and v.shape[-1] == d else q.new_zeros(0)
                window = getattr(self.block, 'window_size', None)
                self.recorder._raw[self.tap] = AttentionCall(
                    qkv, tuple(q.shape), tuple(k.shape), input_shape, self._block_shape,
                    window if isinstance(window, int) else None)
            return original(q, k, v, *rest, **options)
        return capture

    def after(self, module, args, output):
        if self._original is not None:
            F.scaled_dot_product_attention = self._original
            self._original = None
        if self._own is not None:
            setattr(module, SDPA_ATTRIBUTE, self._own)
            self._own = None


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
        self._handles = []
        for tap, target in self.targets.items():
            self._handles += self._register(tap, target)
        self._nhwc = contract_of(self.model).layout == 'NHWC'

    def _register(self, tap, target):
        module = self.model.get_submodule(target.module_path) if target.module_path else self.model
        if target.reads == 'attn':
            module.fused_attn = False  # the fused kernel never materialises the probabilities
            return [module.attn_drop.register_forward_hook(self._store_output(tap, target))]
        if target.reads == 'qkv':
            parent = target.module_path.rpartition('.')[0]
            block = self.model.get_submodule(parent) if parent else None
            capture = SDPACapture(self, tap, module, block)
            return [module.register_forward_pre_hook(capture.before),
                    module.register_forward_hook(capture.after, always_call=True)] \
                + ([block.register_forward_pre_hook(capture.before_block)] if block is not None else [])
        if target.reads == 'input':
            return [module.register_forward_pre_hook(self._store_input(tap))]
        return [module.register_forward_hook(self._store_output(tap, target))]

    def _store_output(self, tap, target):
        def hook(module, args, output):
            if self._raw is not None:
                self._raw[tap] = select_branch(output, target.branches, tap) if target.branches \
                    else branches_or_tensor(output)
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
        batch = 2
        try:
            self.model(torch.zeros(batch, *input_size, device=device))
        except (RuntimeError, AssertionError) as error:  # what torch and timm raise on a wrong input shape
            raise input_size_error(self.model, self.name, input_size, error) from error
        finally:
            raw, self._raw = self._raw, None
            self.model.train(was_training)
        missing = [tap for tap in self.targets if tap not in raw]
        if missing:
            raise RuntimeError(f"{self.name}: " + '; '.join(self.why_not_reached(tap, input_size, device)
                                                            for tap in missing))
        for value in raw.values():
            if isinstance(value, AttentionCall):
                value.batch = batch
        self.specs = {tap: self._describe(tap, raw[tap], input_size, device) for tap in self.targets}
        return self.specs

    def _describe(self, tap, value, input_size, device):
        try:
            if isinstance(value, AttentionCall) and value.not_token_attention():
                value.spec(self.model, tap, self.targets[tap], self.token_attention_paths(input_size, device))
            spec = infer_spec(self.model, tap, self.targets[tap], value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{self.name}: {error.args[0]}") from None
        self._check_stage_channels(tap, spec)
        return spec

    def _check_stage_channels(self, tap, spec):
        contract = contract_of(self.model)
        if not (contract.stage_channels and tap.startswith('stage') and tap[5:].isdigit()):
            return
        index = int(tap[5:]) - 1
        expected = contract.stage_channels[index]
        if spec.kind in ('map', 'tokens') and spec.channels != expected:
            raise ValueError(f"{self.name}: {tap} ({contract.stages[index]}) gives {spec.describe()}, but the "
                             f"model's feature_info says that stage has {expected} channels; pass "
                             "stages=[...] (module paths, shallow to deep) to the model")

    @torch.no_grad()
    def token_attention_paths(self, input_size, device, batch=2):
        """Paths of the model's attention modules that behave as token-to-token attention at ``input_size``
        (one more forward pass; for the message that refuses a module which does not)."""
        candidates = list(contract_of(self.model).attention) or attention_candidates(self.model)
        if not candidates:
            return []
        taps = {f'qkv:{path}': path for path in candidates}
        recorder = TapRecorder(self.model, list(taps), self.name)
        was_training = self.model.training
        self.model.eval()
        recorder.start()
        try:
            self.model(torch.zeros(batch, *input_size, device=device))
        finally:
            raw, recorder._raw = recorder._raw, None
            recorder.remove()
            self.model.train(was_training)
        valid = []
        for tap, path in taps.items():
            call = raw.get(tap)
            if isinstance(call, AttentionCall):
                call.batch = batch
                if not call.not_token_attention():
                    valid.append(path)
        return valid

    def why_not_reached(self, tap, input_size=None, device=None):
        """Why a tap's hook did not fire in a forward pass, and what to tap instead (for a ``qkv:`` tap, the
        attention modules that can be read, found with one more forward of ``input_size``)."""
        target = self.targets[tap]
        path = target.module_path
        module = self.model.get_submodule(path) if path else self.model
        kind = type(module).__name__
        if is_container(module):
            children = [name for name, _ in module.named_children()]
            shown = ', '.join(f"'{path}.{c}'" for c in children[:6]) + (' ...' if len(children) > 6 else '')
            return (f"tap {tap!r} reads {path!r}, a {kind} container: its children run, it never does, so "
                    f"nothing is recorded. Tap one of its children ({shown or 'none'}){self._argument_hint(tap)}")
        if target.reads == 'attn':
            return (f"tap {tap!r}: the attention dropout of {kind} at {path!r} never ran, so its probabilities "
                    "are never materialised (the module computes attention in one fused call); use "
                    f"'qkv:{path}' for its q, k, v instead")
        if target.reads == 'qkv':
            advice = attention_advice(self.model, self.token_attention_paths(input_size, device)) \
                if input_size else "tap a timm-style attention module whose fused path calls it"
            return (f"tap {tap!r}: {kind} at {path!r} made no F.scaled_dot_product_attention call (or never "
                    f"ran), so its q, k, v cannot be read. {advice}")
        parent, _, name = path.rpartition('.')
        return (f"tap {tap!r} reads {path!r} ({kind}), which was never called during the forward: its parent "
                f"{parent or type(self.model).__name__!r} uses it without calling it (e.g. F.linear(x, "
                f"{name}.weight)) or skips it. Tap a module that runs, e.g. its parent {parent!r}"
                + (" (or 'qkv:<attention path>' for attention q, k, v)" if name == 'qkv' else '')
                + self._argument_hint(tap))

    @staticmethod
    def _argument_hint(tap):
        if tap == 'pre_logits':
            return "; pass classifier='<path of a Linear that runs>' to the model"
        if tap.startswith('stage') and tap[5:].isdigit():
            return "; pass stages=[...] (paths of modules that run, shallow to deep) to the model"
        return ''

    def remove(self):
        for handle in getattr(self, '_handles', ()):
            handle.remove()
        self._handles = []

    def __del__(self):
        self.remove()
