"""FOFA — "Feature-based One-For-All" heterogeneous distillation, published as PAT ("Perspective-Aware
Teaching", arXiv 2501.08885); docs/methods/fofa.md. Registered as ``fofa`` and ``pat``.

Student side — RAA, Region-Aware Attention (docs/methods/fofa.md):

1. Each student stage k (a map, or tokens read on their patch grid without prefix tokens) is patchified to
   M/4 = g×g tokens of width ``dim``: patch p_k = ⌈H_k / g⌉ per axis, nearest-upsampling to g·p_k first when
   the map is smaller, then a conv with kernel = stride = p_k (bias, no norm).
2. The stages' tokens are concatenated (stage order) to X ∈ R^{B×M×dim}.
3. One attention op, no residual, MLP or output projection (docs/methods/fofa.md): Q = Linear_q(LN(X)),
   K, V = Linear_kv(LN(X)) with one shared LayerNorm; a fixed sinusoidal encoding of the M token positions is
   added to Q and K; ``heads`` heads, scale (dim / heads)^−½, no dropout.
4. The output is split back into the stages' M/4-token chunks.
5. Each chunk is projected onto its teacher stage: a token teacher (N_t × D_t) gets BatchNorm1d over the
   token axis, Linear(dim → D_t), BatchNorm1d over channels, Linear(M/4 → N_t) on the token axis; a map
   teacher (C_t × H_t × W_t) gets the g×g map nearest-upsampled to H_t × W_t, BatchNorm2d(dim) and a
   bias-free 1×1 conv dim → C_t. Patch-embed convs and projectors: Kaiming-normal convs, trunc-normal(0.02)
   Linear (FitNet's :func:`~kdzoo.methods.fitnet.distiller.init_connector_weights`).

Feature loss (docs/methods/fofa.md): L_feat = Σ_k HCL(Â_s^k, F_t^k) with ReviewKD's hierarchical context loss (HCL): MSE at
full resolution plus MSE of 4×4, 2×2, 1×1 average pools (levels smaller than the map only) weighted ½, ¼, ⅛
in the order they exist, divided by 1 + Σw. Token stages are compared as maps on their grid, the teacher's CLS
removed. The teacher features come from the AFP-prompted teacher and are *not* detached (docs/methods/fofa.md), so the
feature loss also trains the prompts.

Teacher side — AFP (docs/methods/fofa.md): an adapter on the same teacher that provides
:class:`~kdzoo.adapters.interfaces.FeedbackPrompts` (kdzoo's is :class:`~kdzoo.methods.fofa.adapter.AFP`), bound
by :meth:`~kdzoo.distillers.BaseDistiller.bind` from ``adapter_needs``. After computing its losses (in training
mode) the distiller hands it Δ^k = aligned student − prompted teacher per stage, detached, for the next
iteration.

Total (docs/methods/fofa.md, code form): L = CE (DistillModel's task loss) + w_kd·T²·KL(p^t ‖ p^s) + w_feat·L_feat
+ w_reg·KL(softmax(z^t) ‖ softmax(z^{t,AFP})). KD uses the *un-prompted* teacher: DistillModel runs it with
the adapter's prompts disabled, frozen, in its teacher fast path (``reads_bare_teacher``: inference mode,
``teacher_precision``, ``teacher_channels_last``); the regulariser (T = 1) keeps the prompted teacher's
predictions close to it (docs/methods/fofa.md).

Defaults [code]: M = 64 (the paper uses 144 on ImageNet / COCO), dim = 512, 8 heads, stages 1–4, T = 1,
every weight 1. M / (number of stages) must be a perfect square; other M are rejected (docs/methods/fofa.md). Loss names:
``loss_fofa_kd``, ``loss_fofa_feat``, ``loss_fofa_reg``.

``code_exact=True`` reproduces the four bugs of the official code (docs/methods/fofa.md, 'Official code and kdzoo switches'), on both sides:
the positional encoding is indexed by the *batch* position and broadcast over tokens; a token stage whose
length is not a square loses its *last* token as "CLS" (a timm ViT's real CLS stays in); AFP's SE blocks
return only their gate; AFP turns a token teacher's prompted map back into tokens with a plain
``reshape(B, h·w, C)`` of the (B, C, h, w) map, no permute, scrambling the tokens even at β = 0. The
default fixes all four.

kdzoo reads Swin stages as maps (its NHWC output is normalised), whereas the PAT code treats Swin as a token
model; ``teacher_kind='tokens'`` picks the token projector for such a teacher, as FitNet's option does.
The feedback requires a constant batch size: keep ``drop_last=True`` in the train loader.
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdzoo.adapters.interfaces import FeedbackPrompts
from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import non_negative, positive
from kdzoo.taps.feature import to_map, to_tokens
from kdzoo.distillers.base import BARE_TEACHER_OUTPUT, AdapterNeed, BaseDistiller, shape_error
from kdzoo.methods.fitnet.distiller import LAYOUT_KINDS, init_connector_weights
from kdzoo.methods.kd.distiller import kd_loss

HCL_LEVELS = (4, 2, 1)
REGULARISER_TEMPERATURE = 1.0


def average_pool(x, level):
    """``F.adaptive_avg_pool2d(x, level)``; plain average pooling when ``level`` divides the map (the same
    windows; its backward is several times faster on CPU than the adaptive one's)."""
    h, w = x.shape[2:]
    if h % level or w % level:
        return F.adaptive_avg_pool2d(x, level)
    return F.avg_pool2d(x, (h // level, w // level))


def hcl_loss(student_map, teacher_map):
    """ReviewKD's hierarchical context loss between two (B, C, H, W) maps of equal shape (docs/methods/fofa.md).

    Pooling is linear, so each level pools the difference once: MSE(pool(s), pool(t)) = mean(pool(s − t)²).
    """
    difference = student_map - teacher_map
    loss = difference.square().mean()
    weight = total = 1.0
    for level in HCL_LEVELS:
        if level >= difference.shape[2]:
            continue
        weight /= 2
        loss = loss + weight * average_pool(difference, level).square().mean()
        total += weight
    return loss / total


def sinusoidal_encoding(length, dim, device=None, dtype=None):
    """(length, dim): sin on even channels, cos on odd ones, frequencies 10000^(−2i/dim)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)
    return encoding.to(dtype or torch.float32)


# ------------------------------------------------------------------------------------- stage read-outs
def square_side(count):
    side = math.isqrt(count)
    return side if side * side == count else None


def code_exact_token_grid(num_tokens):
    """The PAT code's reading of tokens: all of them if they form a square, else all but the last."""
    for num_dropped in (0, 1):
        side = square_side(num_tokens - num_dropped)
        if side:
            return num_dropped, (side, side)
    return None, None


def stage_map_shape(spec, code_exact, method='fofa'):
    """(C, H, W) of a probed stage read as a map, or a shape error naming the tap."""
    if spec.kind == 'map':
        return tuple(spec.shape)
    if spec.kind == 'tokens':
        grid = code_exact_token_grid(spec.shape[0])[1] if code_exact else spec.grid
        if grid is not None:
            return (spec.channels, *grid)
    raise ValueError(f"{method}: stage tap {spec.describe()} cannot be read as a map (maps need (C, H, W); "
                     "tokens need a square patch grid)")


def stage_as_map(feature, code_exact):
    """(B, C, H, W) of a stage feature: maps as they are, tokens on their grid without prefix tokens."""
    if feature.kind != 'tokens' or not code_exact:
        return feature.as_map()
    num_dropped, grid = code_exact_token_grid(feature.data.shape[1])
    tokens = feature.data[:, :feature.data.shape[1] - num_dropped]
    return to_map(tokens, grid)


# ------------------------------------------------------------------------------------------------- RAA
class StagePatchEmbed(nn.Module):
    """One student stage map → side×side tokens of width ``dim`` (docs/methods/fofa.md step 1)."""

    def __init__(self, in_chans, grid, side, dim):
        super().__init__()
        patch = tuple(math.ceil(size / side) for size in grid)
        self.size = tuple(side * p for p in patch)
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, feature_map):
        if tuple(feature_map.shape[2:]) != self.size:
            feature_map = F.interpolate(feature_map, size=self.size, mode='nearest')
        return to_tokens(self.proj(feature_map))


class RegionAwareAttention(nn.Module):
    """Patchify every student stage, one multi-head self-attention over all M tokens, split per stage."""

    def __init__(self, stage_shapes, num_queries, dim=512, num_heads=8, code_exact=False):
        super().__init__()
        self.queries_per_stage = num_queries // len(stage_shapes)
        self.side = math.isqrt(self.queries_per_stage)
        self.num_heads = num_heads
        self.code_exact = code_exact
        self.embeds = nn.ModuleList([StagePatchEmbed(c, (h, w), self.side, dim) for c, h, w in stage_shapes])
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)

    def positional_encoding(self, x):
        b, m, dim = x.shape
        if self.code_exact:  # the code slices its table by the batch size and broadcasts over tokens
            return sinusoidal_encoding(b, dim, x.device, x.dtype).unsqueeze(1)
        return sinusoidal_encoding(m, dim, x.device, x.dtype)

    def split_heads(self, x):
        b, m, dim = x.shape
        return x.reshape(b, m, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, stage_maps):
        """``stage_maps``: one (B, C_k, H_k, W_k) per stage → one (B, M/stages, dim) per stage."""
        x = self.norm(torch.cat([embed(m) for embed, m in zip(self.embeds, stage_maps)], dim=1))
        k, v = self.kv(x).chunk(2, dim=-1)
        position = self.positional_encoding(x)
        q, k = self.q(x) + position, k + position
        out = F.scaled_dot_product_attention(self.split_heads(q), self.split_heads(k), self.split_heads(v))
        return out.transpose(1, 2).flatten(2).split(self.queries_per_stage, dim=1)


# ------------------------------------------------------------------------------------------ projectors
# Each projector maps one RAA chunk (B, M/stages, dim) onto its teacher stage, returned as a (B, C, H, W) map.

class TokenStageProjector(nn.Module):
    """Token teacher: BN1d over tokens → Linear(dim → D_t) → BN1d over channels → Linear(M/4 → N_t)."""

    def __init__(self, queries, dim, channels, grid):
        super().__init__()
        self.grid = tuple(grid)
        self.token_norm = nn.BatchNorm1d(queries)
        self.channel_proj = nn.Linear(dim, channels)
        self.channel_norm = nn.BatchNorm1d(channels)
        self.token_proj = nn.Linear(queries, grid[0] * grid[1])

    def forward(self, tokens):
        x = self.channel_proj(self.token_norm(tokens)).transpose(1, 2)     # (B, D_t, M/4)
        x = self.token_proj(self.channel_norm(x))                           # (B, D_t, N_t)
        return x.reshape(*x.shape[:2], *self.grid)


class MapStageProjector(nn.Module):
    """Map teacher: chunk as a g×g map → nearest upsample to H_t×W_t → BN2d(dim) → bias-free 1×1 conv."""

    def __init__(self, side, dim, channels, grid):
        super().__init__()
        self.side = side
        self.grid = tuple(grid)
        self.norm = nn.BatchNorm2d(dim)
        self.proj = nn.Conv2d(dim, channels, kernel_size=1, bias=False)

    def forward(self, tokens):
        x = F.interpolate(to_map(tokens, (self.side, self.side)), size=self.grid, mode='nearest')
        return self.proj(self.norm(x))


@DISTILLERS.register_module(name=['fofa', 'FOFA', 'pat', 'PAT'])
class FOFA(BaseDistiller):
    """RAA + HCL feature distillation from an AFP-prompted teacher, KD from the bare one, KL regulariser.

    Needs an adapter providing :class:`~kdzoo.adapters.interfaces.FeedbackPrompts` on its teacher, e.g. AFP:
    ``adapters=[dict(type='afp', target=<teacher name>)]``; it is ``self.adapter('prompts')``.

    Args:
        stages: stage taps distilled on both models; the teacher's must be ``'stage<k>'`` names, as AFP
            works per stage.
        num_queries: M, RAA tokens over all stages; M / len(stages) must be a perfect square.
        dim, num_heads: RAA width and heads.
        temperature: T of the KD term.
        kd_weight, feat_weight, reg_weight: weights of the KD, feature and regulariser terms.
        teacher_kind: ``'map'`` or ``'tokens'`` to pick that projector for every teacher stage; ``None``
            follows the probed kind.
        code_exact: reproduce the official code's four bugs (see the module docstring).
        **kwargs: :class:`BaseDistiller` arguments (``loss_weight``, ``schedule``, ``teacher``).
    """

    reads_bare_teacher = True
    adapter_needs = (AdapterNeed('prompts', FeedbackPrompts, on='teacher', suggest='afp'),)

    def __init__(self, stages=('stage1', 'stage2', 'stage3', 'stage4'), num_queries=64, dim=512, num_heads=8,
                 temperature=1.0, kd_weight=1.0, feat_weight=1.0, reg_weight=1.0, teacher_kind=None,
                 code_exact=False, **kwargs):
        super().__init__(**kwargs)
        self.stages = tuple(stages)
        self._check_arguments(num_queries, dim, num_heads, temperature, teacher_kind,
                              (kd_weight, feat_weight, reg_weight))
        self.num_queries = int(num_queries)
        self.dim = int(dim)
        self.num_heads = int(num_heads)
        self.temperature = float(temperature)
        self.kd_weight, self.feat_weight, self.reg_weight = float(kd_weight), float(feat_weight), float(reg_weight)
        self.teacher_kind = teacher_kind
        self.code_exact = bool(code_exact)
        self.student_taps = self.stages + ('logits',)
        self.teacher_taps = self.stages + ('logits',)
        self.raa = None
        self.projectors = nn.ModuleDict()

    def _check_arguments(self, num_queries, dim, num_heads, temperature, teacher_kind, weights):
        if not self.stages or len(set(self.stages)) != len(self.stages) or \
                not all(s.startswith('stage') and s[5:].isdigit() for s in self.stages):
            raise ValueError(f"fofa: stages must be distinct 'stage<k>' taps, got {list(self.stages)}")
        if num_queries % len(self.stages) or not square_side(num_queries // len(self.stages)):
            raise ValueError(f"fofa: num_queries / {len(self.stages)} stages must be a perfect square (the "
                             f"per-stage token grid), got num_queries={num_queries}")
        if dim % num_heads or dim % 2:
            raise ValueError(f"fofa: dim must be even and divisible by num_heads, got {dim} / {num_heads}")
        positive('fofa', 'temperature', temperature)
        if teacher_kind not in (None,) + LAYOUT_KINDS:
            raise ValueError(f"fofa: teacher_kind must be one of {LAYOUT_KINDS} or None, got {teacher_kind!r}")
        for name, weight in zip(('kd_weight', 'feat_weight', 'reg_weight'), weights):
            non_negative('fofa', name, weight)

    # ------------------------------------------------------------------ set-up
    def bind(self, teacher_names, adapters=(), models=None):
        super().bind(teacher_names, adapters, models)
        self.prompts.configure(self.code_exact)

    @property
    def prompts(self):
        """The teacher's :class:`~kdzoo.adapters.interfaces.FeedbackPrompts` adapter (AFP)."""
        return self.adapter('prompts')

    def build(self, student_specs, teacher_specs):
        self._check_logits(student_specs['logits'], teacher_specs['logits'])
        student_shapes = [stage_map_shape(student_specs[tap], self.code_exact) for tap in self.stages]
        self.raa = RegionAwareAttention(student_shapes, self.num_queries, self.dim, self.num_heads,
                                        self.code_exact)
        teacher_shapes = {tap: stage_map_shape(teacher_specs[tap], self.code_exact) for tap in self.stages}
        for tap in self.stages:
            self.projectors[tap] = self._build_projector(teacher_specs[tap], teacher_shapes[tap])
        init_connector_weights(self.raa.embeds)
        init_connector_weights(self.projectors)
        self.prompts.build(teacher_shapes)

    def _check_logits(self, student_spec, teacher_spec):
        if student_spec.shape != teacher_spec.shape or len(teacher_spec.shape) != 1:
            raise shape_error('fofa', 'student and teacher logits must be (num_classes,) of the same width',
                              student_spec, teacher_spec)

    def _build_projector(self, spec, shape):
        channels, *grid = shape
        if (self.teacher_kind or spec.kind) == 'tokens':
            return TokenStageProjector(self.raa.queries_per_stage, self.dim, channels, grid)
        return MapStageProjector(self.raa.side, self.dim, channels, grid)

    # ------------------------------------------------------------------ losses
    def compute_losses(self, student, teacher, labels):
        feat_loss, feedback = self.feature_loss(student, teacher)
        plain_logits = teacher[BARE_TEACHER_OUTPUT].data
        losses = {
            'loss_fofa_kd': self.kd_weight * kd_loss(student['logits'].data, plain_logits, self.temperature),
            'loss_fofa_feat': self.feat_weight * feat_loss,
            'loss_fofa_reg': self.reg_weight * kd_loss(teacher['logits'].data, plain_logits,
                                                       REGULARISER_TEMPERATURE),
        }
        if self.training:
            self.prompts.set_feedback(feedback)
        return losses

    def feature_loss(self, student, teacher):
        """(Σ_k HCL(projected RAA chunk k, prompted teacher stage k), {stage: detached student − teacher})."""
        chunks = self.raa([stage_as_map(student[tap], self.code_exact) for tap in self.stages])
        loss, feedback = 0.0, {}
        for tap, chunk in zip(self.stages, chunks):
            prediction = self.projectors[tap](chunk)
            target = stage_as_map(teacher[tap], self.code_exact)
            if prediction.shape != target.shape:
                raise ValueError(f"fofa: projected student for {tap!r} has shape {tuple(prediction.shape)} but "
                                 f"the teacher's is {tuple(target.shape)}; the input size differs from the "
                                 "probed one")
            loss = loss + hcl_loss(prediction, target)
            feedback[tap] = (prediction - target).detach()
        return loss, feedback

    def extra_repr(self):
        return (f"{super().extra_repr()}, stages={list(self.stages)}, num_queries={self.num_queries}, "
                f"dim={self.dim}, temperature={self.temperature}, code_exact={self.code_exact}")
