"""OFA-KD: Hao et al., "One-for-All: Bridge the Gap Between Heterogeneous Architectures in Knowledge
Distillation", NeurIPS 2023 (docs/methods/ofa.md).

Every chosen student stage gets an exit branch that projects its feature into the logit space; each exit
and the student's own logits are supervised by the teacher's final logits with the OFA loss (the official
code form, docs/methods/ofa.md):

    L_OFA(z) = mean_batch[ −Σ_c ((p^t_c + e_c)^ε − e_c) · log p^s_c ],  p = softmax(z / T), e = one-hot(y).

ε = 1 is soft cross-entropy with the teacher's probabilities (KD's gradient at T, without KD's T² factor,
as in the code). ``modulate_nontarget=False`` is the paper-only form: the target weight is (1 + p^t_y)^ε − 1 and the
non-target weights stay p^t_c. No teacher intermediate feature is used.

Exit branches (docs/methods/ofa.md), chosen by the student stage's family:

* CNN (maps C_k×H_k×W_k): stage k < 4 gets (4 − k) SepConv blocks, each halving the size and doubling the
  width, the last one ending at d* = max(d_s, d_t) (the larger pre-logit width); stage 4 a 1×1 conv to d*.
  Then global average pooling and Linear(d* → num_classes).
* Tokens: prefix tokens are set aside; m = max(⌊log2(g / 7)⌋, 0) patch-merging layers (2×2 concat,
  LayerNorm, bias-free Linear; the first maps to d_s) shrink the g×g grid; GELU follows the first merge
  and every later one but the last (the code's layout: a single merge, as on the 14×14 grid of a ViT/DeiT
  at patch 16 and 224 px, is followed by GELU); prefix tokens are re-attached; max(4 − k, 1) timm ViT
  blocks (dim d_s, 4 heads); readout of the CLS token (the first prefix token only, docs/methods/ofa.md) or of the
  token mean; Linear(d_s → num_classes).

Init as in the code: convs Kaiming-normal (fan_out), BN 1 / 0, Linear trunc-normal(0.02) with zero bias.

Defaults (OFA code, docs/methods/ofa.md): stages 1–4, T = 1, every weight 1, ε = 1.0 (CIFAR-100; the ImageNet DeiT-T →
ResNet-18 command uses 1.5). ``eps`` may be a list of len(stages) + 1 values, the last for the final
logits (docs/methods/ofa.md). The separate CE (with label smoothing 0.1 in the benchmarks) is DistillModel's task loss.
Branches are submodules of this distiller: ``sum(p.numel() for p in distiller.parameters())`` is the
"extra params" figure.

The widths d_s and d_t are read from the ``pre_logits`` taps at build time unless ``student_width`` /
``teacher_width`` are given. kdzoo reads Swin stages as maps; set ``student_family='token'`` to give a Swin
student the token branches of the OFA code.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.swin_transformer import PatchMerging
from timm.models.vision_transformer import Block

from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import non_negative, positive
from kdzoo.distillers.base import BaseDistiller, shape_error
from kdzoo.methods.fitnet.distiller import init_connector_weights

FAMILIES = ('cnn', 'token')
LAST_STAGE = 4
FINAL_GRID = 7          # token exits merge patches down to about a 7×7 grid
BRANCH_HEADS = 4


def ofa_loss(student_logits, teacher_logits, labels, eps, temperature=1.0, modulate_nontarget=True):
    """The OFA loss of one set of logits (see the module docstring), averaged over the batch."""
    target_mask = F.one_hot(labels, student_logits.shape[1]).to(student_logits.dtype)
    p_teacher = F.softmax(teacher_logits / temperature, dim=1)
    if modulate_nontarget:
        weights = (p_teacher + target_mask) ** eps - target_mask
    else:
        weights = torch.where(target_mask.bool(), (1 + p_teacher) ** eps - 1, p_teacher)
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    return -(weights * log_p_student).sum(1).mean()


# ---------------------------------------------------------------------------------------------- CNN exits
class SepConv(nn.Sequential):
    """Two depthwise-separable 3×3 convs, each followed by BN and ReLU; the first has stride 2.

    dw 3×3 /2 → pw 1×1 → BN → ReLU → dw 3×3 → pw 1×1 to ``out_chans`` → BN → ReLU.
    """

    def __init__(self, in_chans, out_chans):
        super().__init__(
            nn.Conv2d(in_chans, in_chans, 3, stride=2, padding=1, groups=in_chans, bias=False),
            nn.Conv2d(in_chans, in_chans, 1, bias=False),
            nn.BatchNorm2d(in_chans),
            nn.ReLU(),
            nn.Conv2d(in_chans, in_chans, 3, stride=1, padding=1, groups=in_chans, bias=False),
            nn.Conv2d(in_chans, out_chans, 1, bias=False),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(),
        )


def sepconv_chain(in_chans, num_blocks, out_chans):
    """``num_blocks`` SepConvs doubling the width each time; the last one outputs ``out_chans``."""
    blocks = []
    for i in range(num_blocks):
        width = out_chans if i == num_blocks - 1 else 2 * in_chans
        blocks.append(SepConv(in_chans, width))
        in_chans *= 2
    return nn.Sequential(*blocks)


class ConvExit(nn.Module):
    """The exit of a CNN stage: SepConv chain (or a 1×1 conv at stage 4), global pool, Linear."""

    def __init__(self, in_chans, stage, width, num_classes):
        super().__init__()
        if stage < LAST_STAGE:
            self.downsample = sepconv_chain(in_chans, LAST_STAGE - stage, width)
        else:
            self.downsample = nn.Conv2d(in_chans, width, kernel_size=1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, feature):
        return self.head(self.downsample(feature.as_map()).mean((2, 3)))


# -------------------------------------------------------------------------------------------- token exits
class TokenPatchMerging(nn.Module):
    """timm's Swin patch merging (2×2 concat → LayerNorm → bias-free Linear) on (B, h·w, C) tokens, + act."""

    def __init__(self, grid, dim, out_dim, act_layer):
        super().__init__()
        self.grid = tuple(grid)
        self.merge = PatchMerging(dim, out_dim)
        self.act = act_layer()

    @property
    def out_grid(self):
        return tuple((side + 1) // 2 for side in self.grid)

    def forward(self, tokens):
        merged = self.merge(tokens.reshape(tokens.shape[0], *self.grid, tokens.shape[-1]))
        return self.act(merged.flatten(1, 2))


def num_merges(num_patches):
    """m = max(⌊log2(g / 7)⌋, 0) with g = √(patch tokens)."""
    return max(math.floor(math.log2(math.sqrt(num_patches) / FINAL_GRID)), 0)


def patch_merger(grid, num_patches, dim, width):
    """The merges of a token exit; a bias-free Linear [PROPOSED] when none are needed but widths differ."""
    merges = num_merges(num_patches)
    if merges == 0:
        return nn.Linear(dim, width, bias=False) if dim != width else nn.Identity()
    layers = []
    for i in range(merges):
        act_layer = nn.GELU if i == 0 or i < merges - 1 else nn.Identity   # the OFA code's layout
        layers.append(TokenPatchMerging(grid, dim if i == 0 else width, width, act_layer))
        grid = layers[-1].out_grid
    return nn.Sequential(*layers)


class TokenExit(nn.Module):
    """The exit of a token stage: patch merging, ViT blocks, CLS (or mean) readout, Linear."""

    def __init__(self, grid, num_patches, num_prefix, dim, stage, width, num_classes):
        super().__init__()
        self.num_prefix = num_prefix
        self.merge = patch_merger(grid, num_patches, dim, width)
        self.blocks = nn.Sequential(*[Block(dim=width, num_heads=BRANCH_HEADS)
                                      for _ in range(max(LAST_STAGE - stage, 1))])
        self.head = nn.Linear(width, num_classes)

    def forward(self, feature):
        x = self.merge(feature.patch_tokens())
        if self.num_prefix:
            x = torch.cat([feature.prefix_tokens(), x], dim=1)
        x = self.blocks(x)
        readout = x[:, 0] if self.num_prefix else x.mean(1)
        return self.head(readout)


def family_of(spec):
    return {'map': 'cnn', 'tokens': 'token'}.get(spec.kind)


def token_layout(spec):
    """(grid, patch-token count, prefix-token count) of a stage read as tokens; maps are read row-major."""
    if spec.kind == 'map':
        return tuple(spec.shape[1:]), spec.shape[1] * spec.shape[2], 0
    return spec.grid, spec.shape[0] - spec.num_prefix, spec.num_prefix


@DISTILLERS.register_module(name=['ofa', 'OFA'])
class OFA(BaseDistiller):
    """One-for-All KD: exit branches on student stages, all matched to the teacher logits.

    Args:
        stages: student stages (1–4) that get an exit branch.
        eps: ε of the OFA loss; one value, or len(stages) + 1 values (the last for the final logits).
        temperature: T of both softmaxes.
        num_classes: classes of the branch heads; ``None`` takes the teacher's logit width (they must agree).
        modulate_nontarget: True is the code form (non-target teacher probabilities raised to ε); False
            modulates only the target weight, as the paper motivates it.
        final_weight: weight of the OFA term on the student's own logits (``loss_ofa_final``); 0 drops it.
        student_family: ``'cnn'`` or ``'token'`` branches for every stage; ``None`` follows the tap kind
            (maps get CNN branches, tokens token branches).
        student_width, teacher_width: pre-logit widths d_s and d_t; ``None`` reads each from the model's
            ``pre_logits`` tap (which then is recorded every step but enters no loss).
        **kwargs: :class:`BaseDistiller` arguments (``loss_weight``, ``schedule``, ``teacher``).
    """

    def __init__(self, stages=(1, 2, 3, 4), eps=1.0, temperature=1.0, num_classes=None,
                 modulate_nontarget=True, final_weight=1.0, student_family=None, student_width=None,
                 teacher_width=None, **kwargs):
        super().__init__(**kwargs)
        self.stages = tuple(int(k) for k in stages)
        if not self.stages or len(set(self.stages)) != len(self.stages) or \
                not all(1 <= k <= LAST_STAGE for k in self.stages):
            raise ValueError(f"ofa: stages must be distinct values in 1..{LAST_STAGE}, got {list(stages)}")
        self.eps = self._per_exit_eps(eps)
        positive('ofa', 'temperature', temperature)
        non_negative('ofa', 'final_weight', final_weight)
        if student_family not in (None,) + FAMILIES:
            raise ValueError(f"ofa: student_family must be one of {FAMILIES} or None, got {student_family!r}")
        self.temperature = float(temperature)
        self.num_classes = num_classes
        self.modulate_nontarget = bool(modulate_nontarget)
        self.final_weight = float(final_weight)
        self.student_family = student_family
        self.student_width = student_width
        self.teacher_width = teacher_width
        self.student_taps = tuple(f'stage{k}' for k in self.stages) + ('logits',) + \
            (('pre_logits',) if student_width is None else ())
        self.teacher_taps = ('logits',) + (('pre_logits',) if teacher_width is None else ())
        self.branches = nn.ModuleDict()

    def _per_exit_eps(self, eps):
        values = [eps] * (len(self.stages) + 1) if isinstance(eps, (int, float)) else list(eps)
        if len(values) != len(self.stages) + 1:
            raise ValueError(f"ofa: eps must be one number or {len(self.stages) + 1} values (one per stage "
                             f"and one for the final logits), got {eps!r}")
        return [positive('ofa', f'eps[{i}]', value) for i, value in enumerate(values)]

    def _check_classes(self, student_specs, teacher_specs):
        student_logits, teacher_logits = student_specs['logits'], teacher_specs['logits']
        if student_logits.shape != teacher_logits.shape or len(teacher_logits.shape) != 1:
            raise shape_error('ofa', 'student and teacher logits must be (num_classes,) of the same width',
                              student_logits, teacher_logits)
        num_classes = teacher_logits.shape[0]
        if self.num_classes is not None and self.num_classes != num_classes:
            raise ValueError(f"ofa: num_classes={self.num_classes} but the teacher has {num_classes} logits")
        return num_classes

    def build(self, student_specs, teacher_specs):
        num_classes = self._check_classes(student_specs, teacher_specs)
        student_width = self.student_width or student_specs['pre_logits'].channels
        teacher_width = self.teacher_width or teacher_specs['pre_logits'].channels
        for stage in self.stages:
            spec = student_specs[f'stage{stage}']
            self.branches[f'stage{stage}'] = self._build_exit(spec, stage, student_width, teacher_width,
                                                              num_classes, teacher_specs['logits'])
        init_connector_weights(self.branches)

    def _build_exit(self, spec, stage, student_width, teacher_width, num_classes, teacher_logits):
        family = self.student_family or family_of(spec)
        if family == 'cnn' and (spec.kind == 'map' or (spec.kind == 'tokens' and spec.grid)):
            return ConvExit(spec.channels, stage, max(student_width, teacher_width), num_classes)
        if family == 'token' and spec.kind in ('map', 'tokens'):
            grid, num_patches, num_prefix = token_layout(spec)
            if student_width % BRANCH_HEADS:
                raise shape_error('ofa', f'token exits need a student width divisible by {BRANCH_HEADS} '
                                  f'heads, d_s = {student_width}', spec, teacher_logits)
            if num_prefix and spec.channels != student_width:
                raise shape_error('ofa', f'prefix tokens of width {spec.channels} cannot be re-attached to '
                                  f'exit tokens of width d_s = {student_width}', spec, teacher_logits)
            if grid is None and num_merges(num_patches):
                raise shape_error('ofa', 'the tokens form no patch grid to merge', spec, teacher_logits)
            return TokenExit(grid, num_patches, num_prefix, spec.channels, stage, student_width, num_classes)
        raise shape_error('ofa', f'no exit branch fits a {spec.kind} stage feature (family {family!r})',
                          spec, teacher_logits)

    def compute_losses(self, student, teacher, labels):
        teacher_logits = teacher['logits'].data
        losses = {}
        for stage, eps in zip(self.stages, self.eps):
            exit_logits = self.branches[f'stage{stage}'](student[f'stage{stage}'])
            losses[f'loss_ofa_stage{stage}'] = ofa_loss(exit_logits, teacher_logits, labels, eps,
                                                        self.temperature, self.modulate_nontarget)
        if self.final_weight:
            losses['loss_ofa_final'] = self.final_weight * ofa_loss(
                student['logits'].data, teacher_logits, labels, self.eps[-1], self.temperature,
                self.modulate_nontarget)
        return losses

    def extra_repr(self):
        return (f"{super().extra_repr()}, stages={list(self.stages)}, eps={self.eps}, "
                f"temperature={self.temperature}, modulate_nontarget={self.modulate_nontarget}")
