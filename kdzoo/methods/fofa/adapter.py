"""AFP — Adaptive Feedback Prompts, the teacher side of FOFA / PAT (docs/methods/fofa.md).

One AFP block sits at the input of every teacher stage (stages 1–4 by default [paper + code]). Stage k's
input is the output of stage k − 1, so the blocks run as forward pre-hooks on the modules that consume those
outputs: the first stage module, then the module registered right after stage k − 1 in the same parent.
Under kdzoo's stage convention (:mod:`kdzoo.taps.stages`) that is before blocks 0, 2, 4 and 10 of a
12-block ViT / Mixer, before layer1–4 of a ResNet and before each stage of Swin / ConvNeXt (docs/methods/fofa.md). When
the teacher is first run (DistillModel probes it), the adapter records every stage input and checks that it
is the very tensor the previous stage returned; ``insert_before`` names the modules explicitly instead.

Each block reads the stage input x_in as a C×h×w map (tokens are laid out on their patch grid, prefix
tokens are set aside and re-attached unchanged at their position) together with the feedback Δ^k:

    x_f   = fusion(concat[x_in, align(Δ^k)])        (x_f = x_in when there is no feedback)
    x_out = x_in + β · prompt(x_f)

* fusion: Conv1×1 (2C → C) → Conv5×5 → Conv1×1 → SE(16) → Conv1×1.
* prompt (Pro-tuning): Conv1×1 (groups 4) → depthwise Conv5×5 → Conv1×1 → SE(16) → Conv1×1 (groups 4).
* β: one learnable scalar per block, 0 at start, so the teacher is initially unchanged.
* align: identity when Δ^k already has the stage input's shape (ViT, Mixer), else nearest resize + BN +
  bias-free 1×1 conv, Kaiming-normal init (docs/methods/fofa.md, the map → map projector of the code).

Feedback (docs/methods/fofa.md): Δ^k = aligned student − prompted teacher at stage k's output, detached, from the
*previous* training iteration (a different mini-batch, as the paper intends). FOFA computes it and hands it
over with :meth:`AFP.set_feedback` (AFP provides :class:`~kdzoo.adapters.interfaces.FeedbackPrompts`, the
interface FOFA binds by, so another adapter providing it serves FOFA too). It lives in one buffer per stage
(``blocks.stage<k>.feedback``), so it is saved in and resumed from checkpoints. Without feedback (first step, after :meth:`clear_feedback`, or a batch
whose size differs from the stored one) the fusion block is skipped: it runs on zero feedback and is weighted
by 0, so the output is exactly that of x_f = x_in while every parameter stays in the graph (DDP needs no
``find_unused_parameters``). The feedback therefore needs a constant batch size (``drop_last=True``); under
DDP each rank keeps its own buffer.

Prompts act only while the adapter is in training mode; in eval mode and inside :meth:`prompts_disabled`
the teacher runs bare (FOFA's un-prompted pass, teacher evaluation). The teacher backbone stays frozen; the
AFP parameters live in this adapter, and the teacher's own state-dict keys are untouched (hooks only).

``code_exact`` (set through :meth:`AFP.configure` by the FOFA distiller that feeds this adapter,
docs/methods/fofa.md) reproduces three of the official code's bugs: the SE block returns only its sigmoid gate (so each branch emits a per-channel vector that is
broadcast-added); a token input whose length is not a square loses its *last* token as "CLS" (which is
re-attached at the end), so a timm ViT's real CLS token enters the map; and the prompted (B, C, h, w) map
is turned back into tokens by a plain ``reshape(B, h·w, C)`` without the permute that undoes the
tokens → map transpose, which scrambles every token input's channels and positions even at β = 0 (the
teacher no longer sees its own features). Default: x·gate, prefix tokens taken from the front, and
map → tokens as the exact inverse of tokens → map.

Deviations and choices [PROPOSED]: the SE squeeze width is max(C // 16, 1) and the grouped 1×1 convs use
gcd(4, C) groups, so stages narrower than 16 channels (or not divisible by 4) still build. Swin stages in
timm ≥ 0.9 begin with their patch merging, so the AFP of a Swin stage acts on the pre-merge map (the previous
stage's output grid); the PAT code (timm 0.6.5) prompted after the merge. Feedback is always aligned as a
map (tokens read on their grid); the code's token → token projector only differs where a token teacher's
stage input and output shapes differ, which no ViT / Mixer / ResMLP does.
"""
import functools
import logging
import math
from typing import NamedTuple, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from kdzoo.registry import ADAPTERS
from kdzoo.taps.feature import to_map, to_tokens
from kdzoo.taps.contract import contract_of
from kdzoo.taps.recorder import TapTarget, declared_stages, infer_spec, resolve_tap, unwrap
from kdzoo.taps.stages import traced_stage_inputs
from kdzoo.adapters.base import BaseAdapter, SwitchablePrompts
from kdzoo.adapters.interfaces import FeedbackPrompts

SE_REDUCTION = 16
PROMPT_GROUPS = 4


class StageInput(NamedTuple):
    """How one stage input is read as a map: its layout, channels, grid and set-aside prefix tokens."""
    kind: str                     # 'NCHW', 'NHWC' or 'tokens'
    channels: int
    grid: Tuple[int, int]
    num_prefix: int = 0
    prefix_last: bool = False     # the PAT code's reading: the set-aside token is the last one
    unpermuted: bool = False      # the PAT code's way back: the map reshaped to tokens without a permute


def stage_input_of(spec, nhwc, code_exact):
    """The :class:`StageInput` of a probed stage input (a :class:`~kdzoo.taps.FeatureSpec`)."""
    if spec.kind == 'map':
        return StageInput('NHWC' if nhwc else 'NCHW', spec.channels, tuple(spec.grid))
    if spec.kind != 'tokens':
        raise ValueError(f"afp: the input of {spec.name} is {spec.describe()}; AFP needs a map or tokens")
    num_tokens = spec.shape[0]
    if code_exact:
        for num_prefix in (0, 1):
            side = math.isqrt(num_tokens - num_prefix)
            if side * side == num_tokens - num_prefix:
                return StageInput('tokens', spec.channels, (side, side), num_prefix, prefix_last=True,
                                  unpermuted=True)
    elif spec.grid is not None:
        return StageInput('tokens', spec.channels, tuple(spec.grid), spec.num_prefix)
    raise ValueError(f"afp: the input of {spec.name} ({spec.describe()}) forms no patch grid to prompt")


def split_stage_input(x, layout):
    """(map, prefix tokens or None) of a raw stage input."""
    if layout.kind == 'NCHW':
        return x, None
    if layout.kind == 'NHWC':
        return x.permute(0, 3, 1, 2), None
    n = layout.num_prefix
    if layout.prefix_last:
        prefix, patches = x[:, x.shape[1] - n:], x[:, :x.shape[1] - n]
    else:
        prefix, patches = x[:, :n], x[:, n:]
    return to_map(patches, layout.grid), prefix if n else None


def join_stage_input(feature_map, prefix, layout):
    """The inverse of :func:`split_stage_input`."""
    if layout.kind == 'NCHW':
        return feature_map
    if layout.kind == 'NHWC':
        return feature_map.permute(0, 2, 3, 1)
    if layout.unpermuted:   # the PAT code's torch.reshape(x, (b, h*w, d)) on a (b, d, h, w) map
        tokens = feature_map.reshape(feature_map.shape[0], -1, feature_map.shape[1])
    else:
        tokens = to_tokens(feature_map)
    if prefix is None:
        return tokens
    return torch.cat([tokens, prefix] if layout.prefix_last else [prefix, tokens], dim=1)


def next_sibling_path(model, path):
    """The module registered right after ``path`` in its parent (the consumer of its output)."""
    parent_path, _, name = path.rpartition('.')
    parent = model.get_submodule(parent_path) if parent_path else model
    names = [child for child, _ in parent.named_children()]
    index = names.index(name)
    if index + 1 == len(names):
        raise ValueError(f"afp: no module follows stage module {path!r} in its parent, so the next stage's "
                         "input cannot be found; pass insert_before=[...] (module paths)")
    return f'{parent_path}.{names[index + 1]}' if parent_path else names[index + 1]


def derived_insertion_path(model, stage):
    """The module whose input is stage ``stage``'s input: the first stage module, else the one after stage − 1."""
    if stage == 1:
        return resolve_tap(model, 'stage1').module_path
    return next_sibling_path(model, resolve_tap(model, f'stage{stage - 1}').module_path)


# ------------------------------------------------------------------------------------------------ blocks
class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: x · sigmoid(W2 · relu(W1 · avgpool(x))); ``gate_only`` returns the gate."""

    def __init__(self, channels, reduction=SE_REDUCTION, gate_only=False):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate_only = gate_only

    def forward(self, x):
        gate = torch.sigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return gate if self.gate_only else x * gate


def fusion_block(channels, gate_only):
    return nn.Sequential(
        nn.Conv2d(2 * channels, channels, 1),
        nn.Conv2d(channels, channels, 5, padding=2),
        nn.Conv2d(channels, channels, 1),
        SqueezeExcite(channels, gate_only=gate_only),
        nn.Conv2d(channels, channels, 1),
    )


def prompt_block(channels, gate_only):
    groups = math.gcd(PROMPT_GROUPS, channels)
    return nn.Sequential(
        nn.Conv2d(channels, channels, 1, groups=groups),
        nn.Conv2d(channels, channels, 5, padding=2, groups=channels),
        nn.Conv2d(channels, channels, 1),
        SqueezeExcite(channels, gate_only=gate_only),
        nn.Conv2d(channels, channels, 1, groups=groups),
    )


class FeedbackAligner(nn.Module):
    """Feedback map (C_f, H_f, W_f) → stage input map (C, h, w): nearest resize, BN, bias-free 1×1 conv."""

    def __init__(self, feedback_channels, channels, grid):
        super().__init__()
        self.grid = tuple(grid)
        self.norm = nn.BatchNorm2d(feedback_channels)
        self.proj = nn.Conv2d(feedback_channels, channels, 1, bias=False)
        nn.init.kaiming_normal_(self.proj.weight, mode='fan_out', nonlinearity='relu')

    def forward(self, feedback):
        if tuple(feedback.shape[2:]) != self.grid:
            feedback = F.interpolate(feedback, size=self.grid, mode='nearest')
        return self.proj(self.norm(feedback))


class AFPBlock(nn.Module):
    """The AFP of one stage: fusion with the stored feedback, prompt branch, β; works on (B, C, h, w) maps."""

    def __init__(self, layout, feedback_shape, gate_only=False):
        super().__init__()
        self.layout = layout
        self.feedback_shape = tuple(feedback_shape)
        channels, input_shape = layout.channels, (layout.channels, *layout.grid)
        self.align = nn.Identity() if self.feedback_shape == input_shape else \
            FeedbackAligner(self.feedback_shape[0], channels, layout.grid)
        self.fusion = fusion_block(channels, gate_only)
        self.prompt = prompt_block(channels, gate_only)
        self.beta = nn.Parameter(torch.zeros(1))
        self.register_buffer('feedback', torch.empty(0))
        self._warned_batch = False

    def usable_feedback(self, batch_size):
        if not self.feedback.numel():
            return None
        if self.feedback.shape[0] != batch_size:
            if not self._warned_batch:
                print_log(f"afp: feedback of batch {self.feedback.shape[0]} meets a batch of {batch_size}; "
                          "fusion is skipped for such batches (FOFA needs drop_last=True)", logger='current',
                          level=logging.WARNING)
                self._warned_batch = True
            return None
        return self.feedback

    def forward(self, x):
        feedback = self.usable_feedback(x.shape[0])
        if feedback is None:
            # Fusion is skipped, but it still runs (on zeros) weighted by 0: the output is exactly x's, and
            # every parameter stays in the graph, which DDP without find_unused_parameters requires.
            zeros = x.new_zeros((x.shape[0], *self.feedback_shape))
            fused = x + 0 * self.fusion(torch.cat([x, self.align(zeros)], dim=1))
        else:
            fused = self.fusion(torch.cat([x, self.align(feedback.to(x.dtype))], dim=1))
        return x + self.beta * self.prompt(fused)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        stored = state_dict.get(prefix + 'feedback')
        if stored is not None and stored.shape != self.feedback.shape:
            self.feedback = torch.empty_like(stored, device=self.feedback.device, dtype=self.feedback.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# ----------------------------------------------------------------------------------------------- adapter
@ADAPTERS.register_module(name=['afp', 'AFP'])
class AFP(FeedbackPrompts, SwitchablePrompts, BaseAdapter):
    """Adaptive Feedback Prompts on a teacher's stage inputs, fed by the FOFA distiller.

    Provides :class:`~kdzoo.adapters.interfaces.FeedbackPrompts`. The blocks are created by :meth:`build`
    (FOFA calls it with the feedback shapes) once the teacher has run a forward pass with the adapter attached,
    which tells each block its stage input's shape.

    Args:
        target: the teacher this adapter attaches to (a name in ``DistillModel.teachers``).
        stages: 1-based teacher stages that get an AFP block; ``None`` is every declared stage.
        insert_before: module paths, one per AFP stage, whose inputs are the stage inputs; ``None`` derives
            them from the teacher's declared stages (see the module docstring).
        code_exact: the official code's SE, CLS and token-order handling (see the module docstring);
            ``None`` takes the value of the FOFA distiller that binds this adapter (False without one).
    """

    def __init__(self, target='teacher', stages=None, insert_before=None, code_exact=None):
        super().__init__(target)
        self.stages = None if stages is None else tuple(int(k) for k in stages)
        self.insert_before = None if insert_before is None else tuple(insert_before)
        self.code_exact = code_exact
        self.blocks = nn.ModuleDict()
        self._enabled = True
        self._model = None
        self._probe_handles = []
        self._seen_inputs = {}        # stage name -> FeatureSpec of the first input seen
        self._fed_by_stage = {}       # stage name -> whether that input was the previous stage's output
        self._stage_outputs = {}
        self._input_shape = None      # of the teacher's first forward, to trace its stages for an error message

    # ------------------------------------------------------------------ attach
    def attach(self, model):
        model = unwrap(model)
        num_declared = len(declared_stages(model))
        if not num_declared:
            note = contract_of(model).stages_note
            raise ValueError(f"afp: {type(model).__name__} declares no stages{f' ({note})' if note else ''}, so "
                             "there is no stage input to prompt; pass stages=[...] (module paths, shallow to "
                             "deep) to the teacher model")
        stages = self.stages or tuple(range(1, num_declared + 1))
        if not stages or not all(1 <= k <= num_declared for k in stages) or len(set(stages)) != len(stages):
            raise ValueError(f"afp: stages must be distinct values in 1..{num_declared} (the stages "
                             f"{type(model).__name__} declares), got {list(stages)}")
        if self.insert_before is not None and len(self.insert_before) != len(stages):
            raise ValueError(f"afp: insert_before needs one module path per AFP stage {list(stages)}, got "
                             f"{list(self.insert_before)}")
        self.stages = tuple(stages)
        self._model = (model,)        # a tuple: a plain reference, not a registered submodule
        self._probe_handles.append(model.register_forward_pre_hook(self._remember_input_shape))
        for k, path in zip(self.stages, self._insertion_paths(model)):
            module = model.get_submodule(path)
            self._handles.append(module.register_forward_pre_hook(
                functools.partial(self._stage_input_hook, f'stage{k}', path)))
            if self.insert_before is None and k > 1:
                previous = model.get_submodule(resolve_tap(model, f'stage{k - 1}').module_path)
                self._probe_handles.append(previous.register_forward_hook(
                    functools.partial(self._remember_stage_output, f'stage{k - 1}')))

    def _insertion_paths(self, model):
        if self.insert_before is not None:
            return [resolve_tap(model, path).module_path for path in self.insert_before]
        return [derived_insertion_path(model, k) for k in self.stages]

    def _remember_input_shape(self, model, args):
        if self._input_shape is None and args and torch.is_tensor(args[0]):
            self._input_shape = tuple(args[0].shape)

    def _remember_stage_output(self, stage, module, args, output):
        self._stage_outputs[stage] = output

    def _stage_input_hook(self, stage, path, module, args):
        if stage not in self.blocks:
            self._record_input(stage, path, args[0])
            return None
        if not self.prompting:
            return None
        block = self.blocks[stage]
        feature_map, prefix = split_stage_input(args[0], block.layout)
        return (join_stage_input(block(feature_map), prefix, block.layout), *args[1:])

    def _record_input(self, stage, path, x):
        if stage in self._seen_inputs:
            return
        self._seen_inputs[stage] = infer_spec(self._model[0], f'{stage} input ({path})', TapTarget(path, 'input'), x)
        k = int(stage[5:])
        self._fed_by_stage[stage] = k == 1 or self.insert_before is not None or \
            self._stage_outputs.get(f'stage{k - 1}') is x

    # ------------------------------------------------------------------ build
    @property
    def built(self):
        return len(self.blocks) > 0

    def build(self, feedback_shapes=None):
        """Create the blocks. ``feedback_shapes``: {``'stage<k>'``: (C, H, W) of Δ^k}; missing stages expect
        feedback in their input's own shape."""
        if self._model is None:
            raise RuntimeError("afp: attach the adapter to its teacher before build()")
        missing = [f'stage{k}' for k in self.stages if f'stage{k}' not in self._seen_inputs]
        if missing:
            raise RuntimeError(f"afp: the inputs of {missing} have not been seen; run one forward pass of the "
                               "teacher with the adapter attached before build() (DistillModel's probe does)")
        self._check_insertion_points()
        nhwc = contract_of(self._model[0]).layout == 'NHWC'
        feedback_shapes = feedback_shapes or {}
        for k in self.stages:
            name = f'stage{k}'
            layout = stage_input_of(self._seen_inputs[name], nhwc, bool(self.code_exact))
            shape = feedback_shapes.get(name, (layout.channels, *layout.grid))
            self.blocks[name] = AFPBlock(layout, shape, gate_only=bool(self.code_exact))
        self._remove_probe_hooks()

    def _check_insertion_points(self):
        wrong = [stage for stage, fed in self._fed_by_stage.items() if not fed]
        if wrong:
            raise ValueError(f"afp: the inputs AFP would prompt for {wrong} are not the previous stages' "
                             f"outputs: {self._insertion_advice()}")

    def _insertion_advice(self):
        """Why the stage inputs were not found, and what to pass as insert_before: the modules a traced
        forward finds at the start of each stage."""
        model = self._model[0]
        contract = contract_of(model)
        paths = [contract.stages[k - 1] for k in self.stages]
        observers = [p for p in paths if isinstance(model.get_submodule(p.split('[')[0]), nn.Identity)]
        why = (f"the stages {observers} only observe timm's forward_intermediates after the forward (no module "
               "of the model consumes them), so where each stage's input enters cannot be derived from them; "
               if observers else "the module registered after a stage does not consume its output; ")
        traced = traced_stage_inputs(model, contract.stages, self._input_shape) if self._input_shape else []
        traced = [traced[k - 1] for k in self.stages] if traced else []
        if traced and None not in traced and len(set(traced)) == len(traced):
            root = f'{contract.module_root}.' if contract.module_root else ''
            found = [p[len(root):] if root and p.startswith(root) else p for p in traced]
            return (f"{why}pass insert_before={found} (the modules a traced forward finds at the start of "
                    f"stages {list(self.stages)}) or other module paths that start each stage")
        return f"{why}pass insert_before=[...] with the module paths that start each stage"

    def _remove_probe_hooks(self):
        for handle in self._probe_handles:
            handle.remove()
        self._probe_handles = []
        self._stage_outputs = {}

    def detach(self):
        super().detach()
        self._remove_probe_hooks()

    # ------------------------------------------------------------------ use
    @property
    def prompting(self):
        return self._enabled and self.training and self.built

    def set_feedback(self, feedback):
        """Store {``'stage<k>'``: Δ^k (B, C, H, W)} for the next forward; stages without a block are ignored."""
        for name, delta in feedback.items():
            if name not in self.blocks:
                continue
            block = self.blocks[name]
            if tuple(delta.shape[1:]) != block.feedback_shape:
                raise ValueError(f"afp: feedback for {name} has shape {tuple(delta.shape[1:])}, the block was "
                                 f"built for {block.feedback_shape}")
            # a new tensor, never an in-place copy: this step's graph still holds the previous feedback
            block.feedback = delta.detach().clone()

    def clear_feedback(self):
        for block in self.blocks.values():
            block.feedback = block.feedback.new_empty(0)

    def configure(self, code_exact):
        """Called by the distiller that feeds this adapter, so that one switch covers both sides."""
        if self.code_exact is not None and bool(self.code_exact) != bool(code_exact):
            raise ValueError(f"afp: code_exact={self.code_exact} on the adapter but {code_exact} on the "
                             "distiller; set it on the distiller only")
        self.code_exact = bool(code_exact)

    def extra_repr(self):
        return f"target={self.target!r}, stages={list(self.stages or [])}, code_exact={self.code_exact}"
