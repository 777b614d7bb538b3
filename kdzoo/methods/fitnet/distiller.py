"""FitNet: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015 (docs/methods/fitnet.md).

Each (student tap, teacher tap) pair gets an aligner that maps the student feature onto the teacher
feature's layout; the loss of a pair is the MSE (mean over all elements) between the aligned student
feature and the teacher feature. Aligners are chosen from the probed shapes (docs/methods/fitnet.md, the PAT-repo design):

* map → tokens (CNN student, token teacher; case A): H ≥ g with p = H/g an integer: patch-embedding conv
  (kernel = stride = p, C_s → D_t). H < g with s = g/H: the teacher's s×s token blocks become one token of
  s²·D_t channels; a 1×1 conv C_s → s²·D_t widens the student map.
* tokens → map (token student, CNN teacher; case B): H ≥ g with p = H/g: Linear(D_s → p²·C_t), then each
  token becomes a p×p×C_t patch. H < g with s = g/H: the student's s×s token blocks form an H×W map of
  s²·D_s channels, then a 1×1 conv → C_t.
* tokens → tokens (case C): N_t > N_s: Linear(D_s → r·D_s) reshaped to (N_t, D_t), r = N_t·D_t/(N_s·D_s).
  Otherwise the student's s×s token blocks are grouped to N_t tokens, then Linear(s²·D_s → D_t).
* map → map (CNN ↔ CNN; docs/methods/fitnet.md, mdistiller's regressor): a 3×3 stride-2 conv if the student map is twice the
  teacher's, a 4×4 stride-2 transposed conv if it is half, else a conv of kernel (1 + H_s − H_t,
  1 + W_s − W_t); then BN and ReLU.

Prefix (CLS / distillation) tokens are removed on both sides; the remaining tokens form the row-major
patch grid. Ratios that are not integers are bridged by bilinearly resizing the student map (or token grid)
to the teacher's grid followed by a 1×1 projection (docs/methods/fitnet.md, [PROPOSED]). Where s×s blocks are grouped or
tokens become patches, channels are ordered as ``pixel_unshuffle`` / ``pixel_shuffle`` do (channel-major);
PAT concatenates position-major, a fixed permutation that the learned projection absorbs.

Init (docs/methods/fitnet.md): convs Kaiming-normal (fan_out), Linear trunc-normal(0.02) with zero bias, BN weight 1, bias 0.

Defaults follow the heterogeneous OFA/PAT benchmarks: stages 1–4, weight 1, losses summed (one named loss
per pair, ``loss_fitnet_<student tap>``). No KD term is included: PAT's ``kd_loss_weight`` corresponds to
adding ``dict(type='kd')`` beside this distiller; the heterogeneous tables use pure FitNet (docs/methods/fitnet.md).
mdistiller's homogeneous CIFAR-100 setting is one hint, the output of the second residual stage of its CIFAR
ResNets (e.g. ``stages=('stage2',)`` when they declare three stages), with ``loss_weight=100``.

Swin stage outputs are maps in kdzoo (its NHWC output is normalised), whereas PAT treats Swin as a token
model; set ``teacher_kind='tokens'`` (or ``student_kind``) to pick the token aligners for such a model.
"""
import re
from typing import NamedTuple, Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from kdzoo.registry import DISTILLERS
from kdzoo.taps.feature import space_to_depth_tokens, to_map, to_tokens
from kdzoo.distillers.base import BaseDistiller, shape_error

LAYOUT_KINDS = ('map', 'tokens')


def init_connector_weights(module):
    """Kaiming-normal (fan_out) convs, trunc-normal(0.02) linears with zero bias, BN weight 1 / bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Layout(NamedTuple):
    """What an aligner needs to know about one side: kind, channels, (h, w) grid and patch-token count."""
    kind: str
    channels: int
    grid: Optional[Tuple[int, int]]
    num_patches: int


def layout_of(spec, kind=None):
    """The layout of a probed tap, optionally read as the other kind (a map as tokens or tokens as a map)."""
    if spec.kind == 'map':
        grid = tuple(spec.shape[1:])
        return Layout(kind or 'map', spec.shape[0], grid, grid[0] * grid[1])
    if spec.kind == 'tokens':
        layout = Layout('tokens', spec.shape[-1], spec.grid, spec.shape[0] - spec.num_prefix)
        if kind == 'map' and spec.grid is None:
            return None
        return layout._replace(kind=kind or 'tokens')
    return None


def integer_ratio(larger, smaller):
    """p ≥ 1 with ``larger == p * smaller`` on both axes, else None."""
    if larger is None or smaller is None:
        return None
    (lh, lw), (sh, sw) = larger, smaller
    if lh % sh or lw % sw or lh // sh != lw // sw:
        return None
    return lh // sh


# ---------------------------------------------------------------------------------------------- aligners
# Each aligner maps (student Feature, teacher Feature) to (prediction, target) tensors of equal shape.

def pointwise_to_tokens(conv, feature_map):
    """A 1×1 ``conv`` of a (B, C, H, W) map as (B, H·W, C_out) tokens: one matmul with the conv's weights,
    about twice as fast on CPU as the conv kernel on these small maps, and no transpose of the output."""
    return F.linear(to_tokens(feature_map), conv.weight.flatten(1), conv.bias)


class PatchEmbedAligner(nn.Module):
    """Case A, H ≥ g: a patch-embedding conv (kernel = stride = H/g) turns the student map into g² tokens."""

    def __init__(self, in_chans, embed_dim, patch_size):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, student, teacher):
        if self.proj.kernel_size == (1, 1):
            return pointwise_to_tokens(self.proj, student.as_map()), teacher.patch_tokens()
        return to_tokens(self.proj(student.as_map())), teacher.patch_tokens()


class TeacherSpaceToDepthAligner(nn.Module):
    """Case A, H < g: each s×s block of teacher tokens becomes one token; a 1×1 conv widens the student."""

    def __init__(self, in_chans, teacher_dim, factor, teacher_grid):
        super().__init__()
        self.factor = factor
        self.teacher_grid = teacher_grid
        self.proj = nn.Conv2d(in_chans, factor ** 2 * teacher_dim, kernel_size=1)

    def forward(self, student, teacher):
        target = space_to_depth_tokens(teacher.patch_tokens(), self.teacher_grid, self.factor)
        return pointwise_to_tokens(self.proj, student.as_map()), target


class UnpatchifyAligner(nn.Module):
    """Case B, H ≥ g: Linear(D_s → p²·C_t) per token, then each token becomes a p×p×C_t patch."""

    def __init__(self, dim, out_chans, patch_size, student_grid):
        super().__init__()
        self.patch_size = patch_size
        self.student_grid = student_grid
        self.proj = nn.Linear(dim, patch_size ** 2 * out_chans)

    def forward(self, student, teacher):
        patches = to_map(self.proj(student.patch_tokens()), self.student_grid)
        return F.pixel_shuffle(patches, self.patch_size), teacher.as_map()


class StudentSpaceToDepthAligner(nn.Module):
    """Case B, H < g: s×s student token blocks form an H×W map of s²·D_s channels; a 1×1 conv maps to C_t."""

    def __init__(self, dim, out_chans, factor, student_grid, teacher_grid):
        super().__init__()
        self.factor = factor
        self.student_grid = student_grid
        self.teacher_grid = teacher_grid
        self.proj = nn.Conv2d(factor ** 2 * dim, out_chans, kernel_size=1)

    def forward(self, student, teacher):
        grouped = space_to_depth_tokens(student.patch_tokens(), self.student_grid, self.factor)
        return self.proj(to_map(grouped, self.teacher_grid)), teacher.as_map()


class TokenExpandAligner(nn.Module):
    """Case C, N_t > N_s: Linear(D_s → r·D_s) per token, the result reshaped to (N_t, D_t)."""

    def __init__(self, dim, ratio, teacher_tokens, teacher_dim):
        super().__init__()
        self.teacher_shape = (teacher_tokens, teacher_dim)
        self.proj = nn.Linear(dim, ratio * dim)

    def forward(self, student, teacher):
        expanded = self.proj(student.patch_tokens())
        return expanded.reshape(expanded.shape[0], *self.teacher_shape), teacher.patch_tokens()


class TokenMergeAligner(nn.Module):
    """Case C, N_t ≤ N_s: each s×s block of student tokens becomes one token, then Linear(s²·D_s → D_t)."""

    def __init__(self, dim, teacher_dim, factor, student_grid):
        super().__init__()
        self.factor = factor
        self.student_grid = student_grid
        self.proj = nn.Linear(factor ** 2 * dim, teacher_dim)

    def forward(self, student, teacher):
        tokens = student.patch_tokens()
        if self.factor > 1:
            tokens = space_to_depth_tokens(tokens, self.student_grid, self.factor)
        return self.proj(tokens), teacher.patch_tokens()


class ResizeAligner(nn.Module):
    """Non-integer grid ratio: bilinear-resize the student map to the teacher grid, then a 1×1 conv (docs/methods/fitnet.md)."""

    def __init__(self, in_chans, out_chans, teacher_grid, teacher_kind):
        super().__init__()
        self.teacher_grid = teacher_grid
        self.teacher_kind = teacher_kind
        self.proj = nn.Conv2d(in_chans, out_chans, kernel_size=1)

    def forward(self, student, teacher):
        resized = F.interpolate(student.as_map(), size=self.teacher_grid, mode='bilinear', align_corners=False)
        prediction = self.proj(resized)
        if self.teacher_kind == 'tokens':
            return to_tokens(prediction), teacher.patch_tokens()
        return prediction, teacher.as_map()


class ConvRegressor(nn.Module):
    """CNN ↔ CNN (mdistiller): a conv chosen by the size ratio, then BN and ReLU (docs/methods/fitnet.md)."""

    def __init__(self, in_chans, out_chans, student_hw, teacher_hw):
        super().__init__()
        (hs, ws), (ht, wt) = student_hw, teacher_hw
        self.resize_to = None
        if (hs, ws) == (2 * ht, 2 * wt):
            self.conv = nn.Conv2d(in_chans, out_chans, kernel_size=3, stride=2, padding=1)
        elif (2 * hs, 2 * ws) == (ht, wt):
            self.conv = nn.ConvTranspose2d(in_chans, out_chans, kernel_size=4, stride=2, padding=1)
        elif hs >= ht and ws >= wt:
            self.conv = nn.Conv2d(in_chans, out_chans, kernel_size=(1 + hs - ht, 1 + ws - wt))
        else:
            self.resize_to = tuple(teacher_hw)
            self.conv = nn.Conv2d(in_chans, out_chans, kernel_size=1)
        self.bn = nn.BatchNorm2d(out_chans)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, student, teacher):
        x = student.as_map()
        if self.resize_to is not None:
            x = F.interpolate(x, size=self.resize_to, mode='bilinear', align_corners=False)
        return self.relu(self.bn(self.conv(x))), teacher.as_map()


def map_to_tokens_aligner(s, t):
    p = integer_ratio(s.grid, t.grid)
    if p is not None:
        return PatchEmbedAligner(s.channels, t.channels, p)
    factor = integer_ratio(t.grid, s.grid)
    if factor is not None:
        return TeacherSpaceToDepthAligner(s.channels, t.channels, factor, t.grid)
    return ResizeAligner(s.channels, t.channels, t.grid, 'tokens')


def tokens_to_map_aligner(s, t):
    p = integer_ratio(t.grid, s.grid)
    if p is not None:
        return UnpatchifyAligner(s.channels, t.channels, p, s.grid)
    factor = integer_ratio(s.grid, t.grid)
    if factor is not None:
        return StudentSpaceToDepthAligner(s.channels, t.channels, factor, s.grid, t.grid)
    return ResizeAligner(s.channels, t.channels, t.grid, 'map')


def tokens_to_tokens_aligner(s, t):
    if t.num_patches > s.num_patches:
        ratio, remainder = divmod(t.num_patches * t.channels, s.num_patches * s.channels)
        if not remainder:
            return TokenExpandAligner(s.channels, ratio, t.num_patches, t.channels)
    elif t.num_patches == s.num_patches:
        return TokenMergeAligner(s.channels, t.channels, 1, s.grid)
    else:
        factor = integer_ratio(s.grid, t.grid)
        if factor is not None:
            return TokenMergeAligner(s.channels, t.channels, factor, s.grid)
    if s.grid is None or t.grid is None:
        return None
    return ResizeAligner(s.channels, t.channels, t.grid, 'tokens')


def build_aligner(student_spec, teacher_spec, student_kind=None, teacher_kind=None):
    """The aligner for one pair of probed taps (docs/methods/fitnet.md); a pair no rule covers is a shape error."""
    s, t = layout_of(student_spec, student_kind), layout_of(teacher_spec, teacher_kind)
    aligner = None
    if s is not None and t is not None:
        if s.kind == 'map' and t.kind == 'map':
            aligner = ConvRegressor(s.channels, t.channels, s.grid, t.grid)
        elif s.kind == 'map' and t.grid is not None:
            aligner = map_to_tokens_aligner(s, t)
        elif t.kind == 'map' and s.grid is not None:
            aligner = tokens_to_map_aligner(s, t)
        elif s.kind == 'tokens' and t.kind == 'tokens':
            aligner = tokens_to_tokens_aligner(s, t)
    if aligner is None:
        raise shape_error('fitnet', 'no aligner rule covers this pair (maps need (C, H, W); tokens need a '
                          'patch grid unless their counts relate by an integer factor)',
                          student_spec, teacher_spec)
    return aligner


def loss_key(tap):
    return re.sub(r'\W', '_', tap)


@DISTILLERS.register_module(name=['fitnet', 'FitNet'])
class FitNet(BaseDistiller):
    """Hint-based feature distillation with one aligner per stage pair.

    Args:
        stages: taps read on both models (default ``stage1`` … ``stage4``).
        student_stages, teacher_stages: per-side tap lists of equal length, for pairs of different depths;
            each defaults to ``stages``.
        student_kind, teacher_kind: ``'map'`` or ``'tokens'`` to read every tap of that side as that kind
            when choosing aligners (e.g. ``teacher_kind='tokens'`` for a Swin teacher, as PAT does);
            ``None`` uses the probed kind.
        **kwargs: :class:`BaseDistiller` arguments (``loss_weight``, ``schedule``, ``teacher``).
    """

    def __init__(self, stages=('stage1', 'stage2', 'stage3', 'stage4'), student_stages=None,
                 teacher_stages=None, student_kind=None, teacher_kind=None, **kwargs):
        super().__init__(**kwargs)
        student_stages = tuple(student_stages or stages)
        teacher_stages = tuple(teacher_stages or stages)
        if not student_stages or len(student_stages) != len(teacher_stages):
            raise ValueError(f"fitnet: student_stages {list(student_stages)} and teacher_stages "
                             f"{list(teacher_stages)} must be non-empty and of equal length")
        if len(set(student_stages)) != len(student_stages):
            raise ValueError(f"fitnet: student_stages {list(student_stages)} must be distinct")
        for name, kind in (('student_kind', student_kind), ('teacher_kind', teacher_kind)):
            if kind not in (None,) + LAYOUT_KINDS:
                raise ValueError(f"fitnet: {name} must be one of {LAYOUT_KINDS} or None, got {kind!r}")
        self.student_taps = student_stages
        self.teacher_taps = teacher_stages
        self.student_kind = student_kind
        self.teacher_kind = teacher_kind
        self.aligners = nn.ModuleDict()

    def build(self, student_specs, teacher_specs):
        for student_tap, teacher_tap in zip(self.student_taps, self.teacher_taps):
            self.aligners[loss_key(student_tap)] = build_aligner(
                student_specs[student_tap], teacher_specs[teacher_tap], self.student_kind, self.teacher_kind)
        init_connector_weights(self.aligners)

    def compute_losses(self, student, teacher, labels):
        losses = {}
        for student_tap, teacher_tap in zip(self.student_taps, self.teacher_taps):
            key = loss_key(student_tap)
            prediction, target = self.aligners[key](student[student_tap], teacher[teacher_tap])
            if prediction.shape != target.shape:
                raise ValueError(f"fitnet: aligned student tap {student_tap!r} has shape "
                                 f"{tuple(prediction.shape)} but teacher tap {teacher_tap!r} has "
                                 f"{tuple(target.shape)}; the input size differs from the probed one")
            losses[f'loss_fitnet_{key}'] = F.mse_loss(prediction, target)
        return losses

    def extra_repr(self):
        pairs = ', '.join(f'{s}->{t}' for s, t in zip(self.student_taps, self.teacher_taps))
        return f"{super().extra_repr()}, pairs=[{pairs}]"
