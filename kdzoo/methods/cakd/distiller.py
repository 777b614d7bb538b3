"""CAKD: Liu, Cao, Li, Hu, Ding, Li, "Cross-Architecture Knowledge Distillation", ACCV 2022
(arXiv 2207.05273; official code yufanLIU/CrossArch_KD). docs/methods/cakd.md.

A ViT teacher teaches a CNN student through two projectors and an adversarial branch:

* PCA projector (partially cross attention, docs/methods/cakd.md). Three bias-free 3×3 convs map the student map h_S to
  Q_S, K_S, V_S with the teacher's head count and head width. Each element of Q_S, K_S and V_S is replaced
  by the teacher's with probability ``p`` (element-wise Bernoulli; ``replace='token'`` swaps whole tokens).
  With A(Q, K) the head-averaged softmax(Q·Kᵀ/√d_h) (``attention='probs'``) or pre-softmax Q·Kᵀ/√d_h
  (``attention='logits'``) and G(V) = head-average of V·Vᵀ/√d_h:
      L_attn = MSE(A(Q'_S, K'_S), A(Q_T, K_T)),   L_vv = MSE(G(V'_S), G(V_T)).
  Teacher Q/K/V are what the last timm attention hands to ``F.scaled_dot_product_attention`` (tap
  ``'qkv:<last block>.attn'``, so fused ``F.linear`` qkv, q/k norms and rotary embeddings are included), with
  the class/prefix tokens removed before the maps are formed (patch × patch maps; for softmax maps this
  normalises over patch keys only, the student having no class token).
* GL projector (group-wise linear, docs/methods/cakd.md). The student grid is cut into contiguous ``gl_block``×``gl_block``
  blocks in row-major order, edge blocks smaller (14×14 → 16 groups, 7×7 → 4); each block has its own
  Linear(C_s → D_t). L_gl = MSE(GL(h_S), teacher patch tokens).
* Multi-view robust training (docs/methods/cakd.md). A PatchGAN (pix2pix ``NLayerDiscriminator``, width 8, 3 layers) sees
  the 1-channel N×N student attention map A_S and the teacher's A_T. Generator term, non-saturating:
  L_adv = BCE(D(A_S), real), fed the NON-detached A_S so it trains the student (``detach_generator=True``
  reproduces the official code, where it trains nothing); D's parameters are detached inside L_adv, so
  no optimiser ever moves D with it. D has its own optimiser (``DistillOptimWrapperConstructor``, 0.01× LR)
  and loss L_D = ½·(BCE(D(A_T), real) + BCE(D(A_S.detach()), fake)), returned by :meth:`discriminator_loss`
  from the maps cached in the forward (protocol in :class:`~kdzoo.distillers.BaseDistiller`). D learns
  from both terms, the paper's discriminator objective (its Eq. 8: −log D(h_T) − log(1 − D(h'_S)), teacher
  features real, student features fake). The official code detaches the teacher term
  (``gan_criterion(pred_real.detach(), True)``): the loss value is the same but D never learns from teacher
  maps, only to push student maps towards "fake"; ``code_exact=True`` reproduces that. The
  multi-view inputs come from the data pipeline (``MultiViewGenerator``, kdzoo/datasets/transforms.py).

Total (paper mode): loss_weight · schedule · (L_attn + L_vv + L_gl + λ_adv·L_adv), plus DistillModel's CE.

``code_exact=True`` follows the official code (docs/methods/cakd.md): a bias-free Linear(C → 3C) qkv on the
student tokens with 16 heads of width C/16, no replacement (p = 0), pre-softmax maps, the teacher's V·Vᵀ
unscaled, extra terms MSE(z_s, z_t) and MSE(cls_proj(pooled_S), CLS_T) (a Linear on ``pre_logits``),
weights attn 0.2, vv 0.05, gl 0.05, logits 1, cls 1, adv 1, the detached generator term, the detached
teacher term of L_D (D trained on student maps only), and one shared GL Linear for grids other than 14×14
and 7×7. Any term weight can be overridden with ``weights=dict(...)``;
a term of weight 0 is not computed and its taps are not read (``adv=0`` builds no discriminator).

Defaults: p = 0.5 [PROPOSED, docs/methods/cakd.md], softmax maps, gl_block 4, λ_adv 1 [PROPOSED], teacher patch tokens
and CLS read after the final LayerNorm (``norm``, as the code's torchvision encoder output; the last block
output when the model has no final norm), student tap ``stage3`` (its grid must equal the teacher's
patch grid: 14×14 for ResNet-50 / ViT-B/16 at 224), ``loss_weight=0.2`` with the ramp
``schedule=dict(ramp_start=26, ramp_end=36)``: the code's w(e) = min(max(e − 25, 0)/50, 0.2) with its
0-based epoch e, written in kdzoo's 1-based epochs (docs/methods/cakd.md).

Deviations and choices beyond the sources:
* Head-averaged maps in paper mode too (the code's form); the paper's per-head use is unknown.
* Softmax maps (the paper-mode default, docs/methods/cakd.md "expose both") hold values near 1/N, so L_attn is small
  next to L_vv; ``attention='logits'`` or a larger ``weights=dict(attn=...)`` strengthens it.
* Each GL Linear has a bias (not specified by the sources).
* Projector init: kdzoo's connector init (Kaiming fan-out convs, trunc-normal(0.02) Linear, zero bias);
  the discriminator keeps PyTorch's default init. PatchGAN convs use padding 1 (pix2pix).
* D sees the same map that enters L_attn (the partially crossed one when p > 0).
* Alternating updates: the student and projectors are stepped first, then D on the same batch's detached
  maps (the code steps D before the student's backward, which only matters for a non-detached generator).
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from torch.func import functional_call

from kdzoo.registry import DISTILLERS
from kdzoo.taps.contract import contract_of, is_container
from kdzoo.taps.recorder import resolve_tap, unwrap
from kdzoo.distillers.base import BaseDistiller, shape_error
from kdzoo.methods.fitnet.distiller import init_connector_weights

TERMS = ('attn', 'vv', 'gl', 'cls', 'logits', 'adv')
PAPER_WEIGHTS = dict(attn=1.0, vv=1.0, gl=1.0, cls=0.0, logits=0.0, adv=1.0)
CODE_WEIGHTS = dict(attn=0.2, vv=0.05, gl=0.05, cls=1.0, logits=1.0, adv=1.0)
CODE_SCHEDULE = dict(ramp_start=26, ramp_end=36)
CODE_HEADS = 16
CODE_GL_GRIDS = ((14, 14), (7, 7))
ATTENTION_FORMS = ('probs', 'logits')
REPLACE_MODES = ('element', 'token')


# ------------------------------------------------------------------------------------ attention arithmetic
def split_heads(tokens, num_heads):
    """(B, N, H·d) → (B, H, N, d), channel h·d + j going to head h (timm's layout)."""
    b, n, c = tokens.shape
    return tokens.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def split_qkv(qkv_tokens, num_heads):
    """A timm ``qkv`` output (B, N, 3·H·d) → q, k, v, each (B, H, N, d)."""
    b, n, c = qkv_tokens.shape
    return qkv_tokens.reshape(b, n, 3, num_heads, c // (3 * num_heads)).permute(2, 0, 3, 1, 4).unbind(0)


def attention_map(q, k, scale, form):
    """Head-averaged (B, N, N) attention: softmax probabilities or pre-softmax logits of q·kᵀ·scale."""
    logits = q @ k.transpose(-2, -1) * scale
    return (logits.softmax(-1) if form == 'probs' else logits).mean(1)


def value_gram(v, scale):
    """Head-averaged (B, N, N) V·Vᵀ·scale."""
    return (v @ v.transpose(-2, -1) * scale).mean(1)


def replace_with_teacher(student, teacher, p, mode):
    """Each element (or each whole token) of ``student`` (B, H, N, d) becomes the teacher's with prob. p."""
    if p == 0:
        return student
    if mode == 'element':
        mask = torch.rand_like(student) < p
    else:
        mask = torch.rand(student.shape[0], 1, student.shape[2], 1, device=student.device) < p
    return torch.where(mask, teacher.to(student.dtype), student)


# ------------------------------------------------------------------------------------------ projectors
class ConvQKV(nn.Module):
    """Paper PCA projector: three bias-free 3×3 convs, each C_s → H·d, read as (B, H, N, d) heads."""

    def __init__(self, in_chans, num_heads, head_dim):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v = (nn.Conv2d(in_chans, num_heads * head_dim, 3, padding=1, bias=False)
                                  for _ in range(3))

    def forward(self, feature):
        x = feature.as_map()
        return tuple(split_heads(conv(x).flatten(2).transpose(1, 2), self.num_heads)
                     for conv in (self.q, self.k, self.v))


class LinearQKV(nn.Module):
    """Official-code PCA projector: one bias-free Linear(C → 3C) on the student tokens (a 1×1 conv)."""

    def __init__(self, in_chans, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(in_chans, 3 * in_chans, bias=False)

    def forward(self, feature):
        return split_qkv(self.qkv(feature.patch_tokens()), self.num_heads)


def contiguous_groups(grid, block):
    """Flat (row-major) positions of each ``block``×``block`` tile of an (h, w) grid, tiles row-major."""
    h, w = grid
    return [[r * w + c for r in range(top, min(top + block, h)) for c in range(left, min(left + block, w))]
            for top in range(0, h, block) for left in range(0, w, block)]


class GroupWiseLinear(nn.Module):
    """GL projector: one Linear(C_s → D_t) per contiguous spatial group of tokens."""

    def __init__(self, in_dim, out_dim, grid, block):
        super().__init__()
        groups = contiguous_groups(grid, block)
        order = torch.tensor([i for group in groups for i in group])
        self.group_sizes = [len(group) for group in groups]
        self.register_buffer('order', order, persistent=False)
        self.register_buffer('inverse_order', order.argsort(), persistent=False)
        self.fcs = nn.ModuleList(nn.Linear(in_dim, out_dim) for _ in groups)

    def forward(self, tokens):
        grouped = tokens[:, self.order].split(self.group_sizes, dim=1)
        projected = torch.cat([fc(part) for fc, part in zip(self.fcs, grouped)], dim=1)
        return projected[:, self.inverse_order]


class PatchGANDiscriminator(nn.Sequential):
    """pix2pix NLayerDiscriminator on a 1-channel map, averaged to one logit per sample (docs/methods/cakd.md).

    Conv 4×4/2 (1 → w) + LeakyReLU 0.2; (layers − 1) × [Conv 4×4/2 + BN + LeakyReLU], doubling the width
    up to 8w; Conv 4×4/1 + BN + LeakyReLU; Conv 4×4/1 → 1; global average.
    """

    def __init__(self, in_chans=1, width=8, layers=3):
        chans = [width * min(2 ** i, 8) for i in range(layers + 1)]
        modules = [nn.Conv2d(in_chans, chans[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1
            modules += [nn.Conv2d(chans[i - 1], chans[i], 4, stride=stride, padding=1, bias=False),
                        nn.BatchNorm2d(chans[i]), nn.LeakyReLU(0.2, True)]
        modules += [nn.Conv2d(chans[-1], 1, 4, stride=1, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(*modules)

    @staticmethod
    def output_size(size, layers):
        """Spatial size of the last conv's output for a size×size input (≤ 0: the map is too small)."""
        for _ in range(layers):
            size = (size - 2) // 2 + 1
        return size - 2


# ------------------------------------------------------------------------------------------ teacher side
@dataclass(frozen=True)
class TeacherAttention:
    """Where the teacher's last attention and final tokens are read, and the attention's geometry."""
    qkv_tap: str
    tokens_tap: str
    num_heads: int
    head_dim: int
    scale: float


def is_timm_attention(module):
    """A timm-style attention module: ``num_heads`` and a fused ``qkv`` (or separate ``q``) projection.
    Whether it is token-to-token attention is checked by behaviour when the ``qkv:`` tap is probed."""
    return hasattr(module, 'num_heads') and any(isinstance(getattr(module, name, None), nn.Linear)
                                                for name in ('qkv', 'q', 'q_proj'))


def head_dim_of(module):
    qkv = getattr(module, 'qkv', None)
    if isinstance(qkv, nn.Linear):
        return qkv.out_features // (3 * module.num_heads)
    q = getattr(module, 'q', None) or getattr(module, 'q_proj', None)
    return getattr(module, 'head_dim', None) or q.out_features // module.num_heads


def final_tokens_path(model, attention_path):
    """The model's final norm (``<root>.norm``) if it has one that runs (not an Identity, nor a container of
    per-branch norms as CrossViT's), else the output of the attention's block."""
    root = contract_of(model).module_root
    norm_path = f'{root}.norm' if root else 'norm'
    modules = dict(model.named_modules())
    if norm_path in modules and not isinstance(modules[norm_path], nn.Identity) \
            and not is_container(modules[norm_path]):
        return norm_path
    return attention_path.rpartition('.')[0]


def describe_model(model):
    inner = getattr(model, contract_of(model).module_root or '', None)
    return f"{type(model).__name__} of {type(inner).__name__}" if isinstance(inner, nn.Module) \
        else type(model).__name__


def find_teacher_attention(model, teacher_name, attention=None, tokens=None):
    """Locate the teacher's last timm-style attention; a model without one cannot be a CAKD teacher."""
    model = unwrap(model)
    if attention is None:
        declared = contract_of(model).attention
        paths = list(declared) or [name for name, module in model.named_modules() if is_timm_attention(module)]
        if not paths:
            raise ValueError(
                f"cakd: teacher {teacher_name!r} ({describe_model(model)}) has no global token attention: no "
                "module of it is a timm-style attention (`num_heads` and a `qkv` nn.Linear), so there is no Q/K/V "
                "to read and CAKD cannot use it as the teacher. Use a teacher with global token attention, e.g. a "
                "plain ViT / DeiT (model_name='deit_tiny_patch16_224')")
        attention = paths[-1]
    else:
        attention = resolve_tap(model, attention).module_path
    module = model.get_submodule(attention)
    if not is_timm_attention(module):
        raise ValueError(f"cakd: teacher {teacher_name!r} module {attention!r} ({type(module).__name__}) is "
                         "not a timm-style attention with `num_heads` and a `qkv` nn.Linear; pass "
                         "teacher_attention='<path of one>'")
    head_dim = head_dim_of(module)
    tokens = final_tokens_path(model, attention) if tokens is None else resolve_tap(model, tokens).module_path
    # q, k, v as the module hands them to F.scaled_dot_product_attention: after any q/k norm and rotary
    # embedding, whether qkv is a called Linear or applied with F.linear; the probe refuses non-token attention
    return TeacherAttention(f'qkv:{attention}', tokens, module.num_heads, head_dim, attention_scale(module, head_dim))


def attention_scale(module, head_dim):
    """The module's softmax scale when it is one number; a learned per-head scale (a temperature of channel
    attention, which the qkv: probe refuses) or none falls back to 1/√d_h."""
    scale = getattr(module, 'scale', None)
    if isinstance(scale, (int, float)) or (torch.is_tensor(scale) and scale.numel() == 1):
        return float(scale)
    return head_dim ** -0.5


# ------------------------------------------------------------------------------------------ the distiller
def term_weights(code_exact, overrides):
    weights = dict(CODE_WEIGHTS if code_exact else PAPER_WEIGHTS)
    unknown = set(overrides or {}) - set(TERMS)
    if unknown:
        raise ValueError(f"cakd: unknown weights {sorted(unknown)}; terms are {list(TERMS)}")
    weights.update(overrides or {})
    if any(not isinstance(w, (int, float)) or w < 0 for w in weights.values()):
        raise ValueError(f"cakd: term weights must be numbers >= 0, got {weights}")
    return weights


@DISTILLERS.register_module(name=['cakd', 'CAKD'])
class CAKD(BaseDistiller):
    """PCA + GL projectors and an attention-map discriminator (see the module docstring).

    Args:
        student_stage: student tap of the map the projectors read; its grid must equal the teacher's.
        code_exact: follow the official code instead of the paper (see the module docstring).
        p: probability that a student Q/K/V element is replaced by the teacher's (paper mode).
        replace: ``'element'`` or ``'token'`` replacement.
        attention: ``'probs'`` (softmax) or ``'logits'`` (pre-softmax) attention maps; code mode: logits.
        weights: per-term weights overriding the mode's defaults (keys ``attn vv gl cls logits adv``).
        gl_block: side of the contiguous GL groups.
        detach_generator: detach the student map in the generator term (the official code's behaviour;
            default False, True in code mode).
        discriminator_width, discriminator_layers: PatchGAN width and number of stride-2 convs.
        teacher_attention: module path of the teacher attention to read (default: its last one).
        teacher_tokens: tap of the teacher's final tokens (default: its ``norm``, else the last block).
        **kwargs: :class:`BaseDistiller` arguments (``teacher``).
    """

    def __init__(self, student_stage='stage3', code_exact=False, p=None, replace='element', attention=None,
                 weights=None, gl_block=4, detach_generator=None, discriminator_width=8,
                 discriminator_layers=3, teacher_attention=None, teacher_tokens=None, loss_weight=0.2,
                 schedule=CODE_SCHEDULE, **kwargs):
        super().__init__(loss_weight=loss_weight, schedule=schedule, **kwargs)
        p = (0.0 if code_exact else 0.5) if p is None else float(p)
        attention = ('logits' if code_exact else 'probs') if attention is None else attention
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"cakd: p must be in [0, 1], got {p}")
        if code_exact and p:
            raise ValueError("cakd: code_exact uses a linear qkv of the student's own width, which cannot "
                             "take the teacher's Q/K/V; set p=0 or code_exact=False")
        if replace not in REPLACE_MODES:
            raise ValueError(f"cakd: replace must be one of {REPLACE_MODES}, got {replace!r}")
        if attention not in ATTENTION_FORMS:
            raise ValueError(f"cakd: attention must be one of {ATTENTION_FORMS}, got {attention!r}")
        self.student_stage = student_stage
        self.code_exact = bool(code_exact)
        self.p, self.replace, self.attention = p, replace, attention
        self.weights = term_weights(self.code_exact, weights)
        self.gl_block = int(gl_block)
        self.detach_generator = self.code_exact if detach_generator is None else bool(detach_generator)
        self.discriminator_width = discriminator_width
        self.discriminator_layers = discriminator_layers
        self.teacher_attention, self.teacher_tokens = teacher_attention, teacher_tokens
        self.student_taps = (student_stage,) + (('pre_logits',) if self.weights['cls'] else ()) \
            + (('logits',) if self.weights['logits'] else ())
        self.geometry = None
        self.discriminator = None
        self._adversarial_maps = None
        self._warned_untrained = False

    # ---------------------------------------------------------------- build
    def bind(self, teacher_names, adapters=(), models=None):
        super().bind(teacher_names, adapters, models)
        if not models or self.teacher not in models:
            raise ValueError("cakd: the teacher model is needed at bind time to find its attention")
        self.geometry = find_teacher_attention(models[self.teacher], self.teacher, self.teacher_attention,
                                               self.teacher_tokens)
        self.teacher_taps = (self.geometry.qkv_tap, self.geometry.tokens_tap) \
            + (('logits',) if self.weights['logits'] else ())

    def build(self, student_specs, teacher_specs):
        g = self.geometry
        student, qkv, tokens = (student_specs[self.student_stage], teacher_specs[g.qkv_tap],
                                teacher_specs[g.tokens_tap])
        self._check_grids(student, qkv, tokens)
        channels, num_patches = student.channels, student.num_patches
        if self.code_exact:
            if channels % CODE_HEADS:
                raise shape_error('cakd', f'code_exact splits the student channels into {CODE_HEADS} heads, '
                                  f'but {channels} is not a multiple of {CODE_HEADS}', student, qkv)
            self.qkv = LinearQKV(channels, CODE_HEADS)
            student_head_dim = channels // CODE_HEADS
        else:
            self.qkv = ConvQKV(channels, g.num_heads, g.head_dim)
            student_head_dim = g.head_dim
        self.student_scale = student_head_dim ** -0.5
        self.teacher_vv_scale = 1.0 if self.code_exact else g.head_dim ** -0.5
        if self.weights['gl']:
            block = self.gl_block
            if self.code_exact and tuple(student.grid) not in CODE_GL_GRIDS:
                block = max(student.grid)
            self.gl = GroupWiseLinear(channels, tokens.channels, student.grid, block)
        if self.weights['cls']:
            if not tokens.num_prefix:
                raise shape_error('cakd', 'the CLS term needs a class token on the teacher tap',
                                  student_specs['pre_logits'], tokens)
            self.cls_proj = nn.Linear(student_specs['pre_logits'].channels, tokens.channels)
        if self.weights['logits'] and student_specs['logits'].shape != teacher_specs['logits'].shape:
            raise shape_error('cakd', 'the logit term needs logits of equal shape', student_specs['logits'],
                              teacher_specs['logits'])
        init_connector_weights(self)
        if self.weights['adv']:
            self._build_discriminator(num_patches, student, qkv)

    def _check_grids(self, student, qkv, tokens):
        if student.grid is None:
            raise shape_error('cakd', 'the student tap must be a map or tokens on a grid', student, qkv)
        if qkv.kind != 'tokens' or qkv.grid is None:
            raise shape_error('cakd', 'the teacher qkv tap must be tokens on a patch grid', student, qkv)
        if tuple(student.grid) != tuple(qkv.grid):
            raise shape_error('cakd', "the student map's grid must equal the teacher's patch grid; pick the "
                              "student stage whose grid matches (student_stage=...), or, when no student stage "
                              f"has a {qkv.grid[0]}x{qkv.grid[1]} grid, a teacher patch size or input size that "
                              "gives the grids in common", student, qkv)
        if tokens.kind != 'tokens' or tuple(tokens.grid or ()) != tuple(qkv.grid):
            raise shape_error('cakd', "the teacher's final tokens must lie on the attention's patch grid; pass "
                              "teacher_tokens='<module path>' naming the module whose output holds them (e.g. the "
                              "last block)",
                              student, tokens)

    def _build_discriminator(self, num_patches, student, qkv):
        if PatchGANDiscriminator.output_size(num_patches, self.discriminator_layers) < 1:
            raise shape_error('cakd', f'the {num_patches}×{num_patches} attention map is too small for a '
                              f'PatchGAN with {self.discriminator_layers} stride-2 layers; lower '
                              'discriminator_layers', student, qkv)
        # channels-last weights: oneDNN's convolutions of these narrow maps run about 1.4x faster forward and
        # backward than in NCHW on CPU (the 1-channel input map has the same memory in both layouts)
        self.discriminator = PatchGANDiscriminator(1, self.discriminator_width, self.discriminator_layers) \
            .to(memory_format=torch.channels_last)

    # ---------------------------------------------------------------- losses
    def compute_losses(self, student, teacher, labels):
        g, w = self.geometry, self.weights
        feature = student[self.student_stage]
        q_s, k_s, v_s = self.qkv(feature)
        q_t, k_t, v_t = split_qkv(teacher[g.qkv_tap].patch_tokens(), g.num_heads)
        q_s, k_s, v_s = (replace_with_teacher(s, t, self.p, self.replace)
                         for s, t in ((q_s, q_t), (k_s, k_t), (v_s, v_t)))
        losses = {}
        if w['attn'] or w['adv']:
            attn_s = attention_map(q_s, k_s, self.student_scale, self.attention)
            attn_t = attention_map(q_t, k_t, g.scale, self.attention)
        if w['attn']:
            losses['loss_cakd_attn'] = w['attn'] * F.mse_loss(attn_s, attn_t)
        if w['vv']:
            losses['loss_cakd_vv'] = w['vv'] * F.mse_loss(value_gram(v_s, self.student_scale),
                                                          value_gram(v_t, self.teacher_vv_scale))
        patch_t = teacher[g.tokens_tap]
        if w['gl']:
            projected = self.gl(feature.patch_tokens())
            losses['loss_cakd_gl'] = w['gl'] * F.mse_loss(projected, patch_t.patch_tokens())
        if w['cls']:
            cls_t = patch_t.prefix_tokens()[:, 0]
            losses['loss_cakd_cls'] = w['cls'] * F.mse_loss(self.cls_proj(student['pre_logits'].data), cls_t)
        if w['logits']:
            losses['loss_cakd_logits'] = w['logits'] * F.mse_loss(student['logits'].data,
                                                                  teacher['logits'].data)
        if w['adv']:
            losses['loss_cakd_adv'] = w['adv'] * self.generator_loss(attn_s)
            self._cache_for_discriminator(attn_t, attn_s)
        return losses

    def generator_loss(self, student_map):
        """Non-saturating BCE(D(A_S), real); D's parameters are detached so only the student learns from it."""
        if self.detach_generator:
            student_map = student_map.detach()
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        logits = functional_call(self.discriminator, frozen, (student_map.unsqueeze(1),))
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def _cache_for_discriminator(self, teacher_map, student_map):
        if not self.training:
            return
        if self._adversarial_maps is not None and not self._warned_untrained:
            self._warned_untrained = True
            print_log("cakd: the discriminator was not trained on the previous batch; build the optimiser "
                      "with optim_wrapper=dict(constructor='DistillOptimWrapperConstructor', ...)",
                      logger='current', level=30)
        self._adversarial_maps = (teacher_map.detach(), student_map.detach())

    def discriminator_loss(self):
        """L_D = ½·(BCE(D(A_T), real) + BCE(D(A_S), fake)) on the maps of the last training forward; in
        code-exact mode D(A_T) is detached, as the official code's ``gan_criterion(pred_real.detach(), True)``."""
        if self.discriminator is None or self._adversarial_maps is None:
            return {}
        teacher_map, student_map = self._adversarial_maps
        self._adversarial_maps = None
        real = self.discriminator(teacher_map.unsqueeze(1))
        if self.code_exact:
            real = real.detach()
        fake = self.discriminator(student_map.unsqueeze(1))
        loss = 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        return {'loss_cakd_disc': loss}

    def extra_repr(self):
        mode = 'code_exact' if self.code_exact else f'paper, p={self.p}, replace={self.replace!r}'
        return (f"{super().extra_repr()}, {mode}, attention={self.attention!r}, "
                f"student_stage={self.student_stage!r}, detach_generator={self.detach_generator}")
