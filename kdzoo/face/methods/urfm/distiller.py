"""URFM — Unified Receptive Fields Mapping, the distiller of Zhao et al. (with the APT teacher adapter).

Paper: Zhao, Zhu, He, Zhang, Lei, "Cross-Architecture Distillation for Face Recognition", ACM MM 2023
(arXiv 2306.14662); docs/methods/urfm.md (inputs, URFM, losses, collapse guards and the open choices). The paper publishes no
code; every shape and constant not tagged [paper] below is [PROPOSED] by kdzoo.

Inputs (docs/methods/urfm.md): the student's last conv map (tap ``stage4``: MobileFaceNet ``conv_sep`` / IResNet ``layer4``,
512×7×7 → 49 tokens) and the teacher's last-stage tokens f^T = [x̂_K, p̂_K] (tap ``stage4``, plus the prompt
outputs of that layer from the teacher's prompt adapter, when it prompted) [paper]. The adapter is any one
on the teacher that provides :class:`~kdzoo.adapters.interfaces.PromptOutputs` (kdzoo's is
:class:`~kdzoo.face.methods.APT`), bound as ``self.adapter('prompts')``.

URFM (docs/methods/urfm.md) maps each side onto L learnable local centers with a cross-attention whose queries carry the
facial positional encoding [paper]:

    f'  = LayerNorm(W_branch · f / max|f|)                  input projection to d, per branch
    q_i = C_i W_q + P[I(D(i, anchor))]                      shared centers C, W_q and bucket table P
    h_i = W_o Σ_j softmax_j(q_i (f'_j W_k)ᵀ / √d_h) f'_j W_v   multi-head; W_k, W_v, W_o per branch

* L = 49 centers on a 7×7 grid over the 112×112 face, d = 512, 8 heads [PROPOSED].
* Init (``qk_init='unit'``) [PROPOSED]: queries and keys of both attentions have unit-variance entries, the
  premise of the 1/√d_h scale: centers N(0, 1) (like DETR's query embeddings; f' is LayerNorm'd, so the
  centers live at its scale), W_q, W_k and the MSA layer's query/key rows normal(0, 1/d); every other linear
  and the bucket table trunc-normal(0.02). ``'trunc_normal'`` (kdzoo before this choice) draws the centers
  and every linear from trunc-normal(0.02): the queries are then ~0.02 and the logits ~1e-2, so each center
  pools the same token average, h is the same at every center, the MSA attention is uniform (1/L ± 1e-5)
  and ``loss_urfm_attn`` ~1e-11 on the ORL pair, with no gradient to break the symmetry.
* Input projection (docs/methods/urfm.md "Linear + LayerNorm") [PROPOSED numerics]: the Linear has no bias and each token is
  first divided by its largest absolute entry (detached). LayerNorm is scale-invariant, so this equals
  LayerNorm(W f) up to LayerNorm's ε, but it cannot overflow when a teacher's activations are huge (an
  untrained IResNet-50's layer4 reaches 1e26, whose squares overflow LayerNorm's variance) or under fp16.
* I is iRPE's piecewise index function (Wu et al., ICCV 2021) with α = r, β = 2r, γ = 8r, r = 1.9
  [PROPOSED ratio]; distances are non-negative, so there are ⌊β⌋ + 1 buckets (4 at r = 1.9) [PROPOSED].
  The encoding is coarse at these defaults: with Euclidean + SD, 40 of the 49 centers share bucket 3 and only
  buckets 0, 2 and 3 occur (Euclidean alone uses all four); docs/methods/urfm.md suggests r = 2.5–3 for finer bins.
* D = D̃ + γ·D_face (γ = 1 [PROPOSED]): D̃ the Euclidean distance in grid units from center i to the anchor,
  the nose-tip template point [PROPOSED]; pixels map to the grid as u = pixel / (112 / side) − 0.5, so cell
  centers sit at integers and the nose tip lands at (row, col) ≈ (3.98, 3.00). D_face [PROPOSED]:
  ``saliency`` (SD, the default; Euclidean + SD is the paper's best [paper]): side·|S(c_i) − S(anchor)| with
  S(u) = max_k exp(−‖u − l_k‖² / 2σ²), σ = 1 cell; ``relative`` (RD): |min_k ‖c_i − l_k‖ − min_k ‖a − l_k‖|.
* Landmarks are the fixed 5-point ArcFace template (docs/face_reference.md §4), since MS1MV2 faces are aligned
  to it (docs/methods/urfm.md) [PROPOSED]. Deviation: a per-image landmark option is not offered (the face
  datasets carry no landmarks).

MSA head (docs/methods/urfm.md): one pre-norm Transformer encoder layer (8-head self-attention, MLP ratio 4, GELU)
on h, shared by both branches [PROPOSED]. Its head-averaged softmax attention A ∈ R^{L×L} is "Attn".

Losses (docs/methods/urfm.md): ``loss_urfm_attn`` = λ_attn·MSE(A^T, A^S) and ``loss_urfm_feat`` = λ_feat·MSE(MSA(h^T),
MSA(h^S)), λ_attn = λ_feat = 1 [PROPOSED]. Nothing is detached on the teacher side: the losses train the
prompts through the teacher features [paper intent]. The ArcFace identity loss is the student's task loss
(``FaceRecognizer.task_loss``), not part of this distiller.

Collapse guards (docs/methods/urfm.md) [PROPOSED], each switchable:

* ``teacher_ema``: the teacher branch uses EMA copies (momentum 0.999) of the *shared* weights — centers, W_q,
  bucket table and the MSA layer — that get no gradient; the student branch trains the online weights. The
  teacher branch's own projection / W_k / W_v / W_o have no student counterpart to average, so they train
  by gradient as without the guard (our reading of "EMA copy of the shared URFM/MSA weights"). The copies are
  buffers (``ema_queries.*``, ``ema_msa.*``), so they are checkpointed and resumed; they are updated at the
  start of every training forward from the weights the previous optimiser step produced.
* ``prompt_anchor``: ``loss_urfm_anchor`` = 1 − cos(e_T^prompt, e_T^frozen), batch mean, weight 1: the
  teacher's final embeddings (its ``logits`` tap, the FaceRecognizer embedding) with prompts and from one
  extra teacher pass with the prompts disabled, which DistillModel runs frozen in its teacher fast path
  (``reads_bare_teacher``). It needs the APT adapter (PromptOutputs) on the teacher; by default
  (``None``) it is on exactly when the teacher has one, so URFM with a frozen CNN teacher needs no switch.
"""
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from kdzoo.adapters.interfaces import PromptOutputs
from kdzoo.face.datasets.alignment import ARCFACE_TEMPLATE_112
from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import non_negative, positive
from kdzoo.utils.init import init_linear_layers
from kdzoo.taps.recorder import resolve_tap, unwrap
from kdzoo.distillers.base import BARE_TEACHER_OUTPUT, AdapterNeed, BaseDistiller, shape_error

LANDMARK_NAMES = ('left_eye', 'right_eye', 'nose', 'left_mouth', 'right_mouth')
FACIAL_PES = ('none', 'euclidean', 'euclidean+saliency', 'euclidean+relative')
QK_INITS = ('unit', 'trunc_normal')
FACE_SIZE = 112


# ---------------------------------------------------------------------------------- facial positional encoding
def irpe_piecewise_index(distance, ratio=1.9):
    """iRPE's piecewise index I(x) of non-negative distances, α = r, β = 2r, γ = 8r (docs/methods/urfm.md).

    I(x) = round(x) for x ≤ α, else min(⌊β⌋, round(α + ln(x/α) / ln(γ/α) · (β − α))); ``round`` is torch's
    (half to even), as in the iRPE code, whose clip to β followed by an integer cast equals the ⌊β⌋ cap.
    """
    distance = torch.as_tensor(distance, dtype=torch.float64)
    if (distance < 0).any():
        raise ValueError("urfm: distances for the piecewise index must be >= 0")
    alpha, beta, gamma = ratio, 2 * ratio, 8 * ratio
    far = alpha + torch.log(distance.clamp(min=alpha) / alpha) / math.log(gamma / alpha) * (beta - alpha)
    index = torch.where(distance <= alpha, distance.round(), far.round().clamp(max=math.floor(beta)))
    return index.long()


def num_buckets(ratio):
    return math.floor(2 * ratio) + 1


def grid_centers(side):
    """(side², 2) (row, col) grid coordinates of the centers, row-major."""
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing='ij')
    return torch.stack([rows.flatten(), cols.flatten()], dim=1).double()


def landmarks_on_grid(landmarks_xy, side, face_size=FACE_SIZE):
    """(K, 2) (row, col) grid coordinates of pixel landmarks (x, y): u = pixel / (face_size / side) − 0.5."""
    xy = torch.as_tensor(landmarks_xy, dtype=torch.float64)
    return xy.flip(1) / (face_size / side) - 0.5


def pairwise_distances(points, landmarks):
    return torch.cdist(points, landmarks, compute_mode='donot_use_mm_for_euclid_dist')


def saliency(points, landmarks, sigma):
    """S(u) = max_k exp(−‖u − l_k‖² / 2σ²) for each of the (P, 2) points."""
    squared = pairwise_distances(points, landmarks) ** 2
    return torch.exp(-squared / (2 * sigma ** 2)).max(dim=1).values


def facial_distance(kind, centers, anchor, landmarks, sigma, side):
    """D_face of every center to the anchor: ``saliency`` (SD) or ``relative`` (RD), docs/methods/urfm.md."""
    anchor = anchor.unsqueeze(0)
    if kind == 'saliency':
        return side * (saliency(centers, landmarks, sigma) - saliency(anchor, landmarks, sigma)).abs()
    if kind == 'relative':
        nearest = pairwise_distances(centers, landmarks).min(dim=1).values
        return (nearest - pairwise_distances(anchor, landmarks).min(dim=1).values).abs()
    raise ValueError(f"urfm: unknown facial distance {kind!r}")


def center_distances(facial_pe, side, landmarks_xy, anchor_index, gamma=1.0, sigma=1.0):
    """D(i, anchor) = D̃ + γ·D_face for the side×side centers (float64, (side²,))."""
    centers = grid_centers(side)
    landmarks = landmarks_on_grid(landmarks_xy, side)
    anchor = landmarks[anchor_index]
    distance = torch.linalg.vector_norm(centers - anchor, dim=1)
    if facial_pe != 'euclidean':
        distance = distance + gamma * facial_distance(facial_pe.split('+')[1], centers, anchor, landmarks,
                                                      sigma, side)
    return distance


class FacialPositionalEncoding(nn.Module):
    """b_i = P[I(D(i, anchor))]: a learnable bucket table read at each center's fixed bucket index."""

    def __init__(self, bucket_index, num_buckets, dim):
        super().__init__()
        self.table = nn.Parameter(torch.empty(num_buckets, dim))
        self.register_buffer('bucket_index', bucket_index.long(), persistent=False)
        trunc_normal_(self.table, std=0.02)

    def forward(self):
        return self.table[self.bucket_index]


# ---------------------------------------------------------------------------------------- URFM modules
def unit_variance_(weight):
    """LeCun-normal weight, std 1/√fan_in: unit-variance inputs give unit-variance outputs."""
    return nn.init.normal_(weight, std=weight.shape[-1] ** -0.5)


def split_heads(x, num_heads):
    """(..., N, d) → (..., heads, N, d / heads)."""
    return x.unflatten(-1, (num_heads, -1)).transpose(-3, -2)


def merge_heads(x):
    """(..., heads, N, d_h) → (..., N, heads·d_h)."""
    return x.transpose(-3, -2).flatten(-2)


class LocalCenterQueries(nn.Module):
    """The shared query side: q = C W_q + b, with L learnable centers C and the facial PE b (or none)."""

    def __init__(self, num_centers, dim, positional_encoding=None):
        super().__init__()
        self.centers = nn.Parameter(torch.empty(num_centers, dim))
        self.query = nn.Linear(dim, dim)
        self.pe = positional_encoding
        trunc_normal_(self.centers, std=0.02)

    def init_unit_variance(self):
        """Centers N(0, 1), like DETR's query embeddings, and a unit-variance W_q: unit-variance queries."""
        nn.init.normal_(self.centers, std=1.0)
        unit_variance_(self.query.weight)

    def forward(self):
        queries = self.query(self.centers)
        return queries if self.pe is None else queries + self.pe()


def scale_free(features):
    """Each token divided by its largest absolute entry (detached); zero tokens stay zero."""
    scale = features.detach().abs().amax(dim=-1, keepdim=True)
    return features / scale.clamp(min=torch.finfo(features.dtype).tiny)


class ReceptiveFieldMapping(nn.Module):
    """One branch of URFM: project its features to d, then L queries attend over them (W_k, W_v, W_o)."""

    def __init__(self, in_dim, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.proj = nn.Linear(in_dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def init_unit_variance(self):
        """A unit-variance W_k: its input is LayerNorm'd, so the keys have unit variance."""
        unit_variance_(self.key.weight)

    def forward(self, features, queries):
        """(B, N, in_dim) features, (L, d) queries → (B, L, d) local features h."""
        features = self.norm(self.proj(scale_free(features)))
        q = split_heads(queries, self.num_heads)
        k = split_heads(self.key(features), self.num_heads)
        v = split_heads(self.value(features), self.num_heads)
        attn = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
        return self.out(merge_heads(attn @ v))


class MSALayer(nn.Module):
    """Pre-norm Transformer encoder layer that also returns its head-averaged attention map (B, L, L)."""

    def __init__(self, dim, num_heads, mlp_ratio=4):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def init_unit_variance(self):
        """Unit-variance query and key rows of the qkv projection (its input is LayerNorm'd)."""
        unit_variance_(self.qkv.weight[:2 * self.qkv.in_features])

    def forward(self, x):
        q, k, v = (split_heads(part, self.num_heads) for part in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        attn = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
        x = x + self.proj(merge_heads(attn @ v))
        x = x + self.mlp(self.norm2(x))
        return x, attn.mean(dim=1)


def buffer_copy(module):
    """A deep copy of ``module`` whose parameters are buffers: used in forward, never trained."""
    frozen = copy.deepcopy(module)
    for sub in frozen.modules():
        for name, param in list(sub.named_parameters(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, param.detach().clone())
    return frozen


def prompt_anchor_loss(prompted, frozen):
    """1 − cos(e_prompt, e_frozen), averaged over the batch (docs/methods/urfm.md b)."""
    return (1 - F.cosine_similarity(prompted, frozen, dim=1)).mean()


# ---------------------------------------------------------------------------------------------- distiller
@DISTILLERS.register_module(name=['urfm', 'URFM'])
class URFM(BaseDistiller):
    """URFM + MSA alignment of a CNN student's last map with an (APT-prompted) transformer teacher.

    The teacher's prompt adapter is optional: ``self.adapter('prompts')``, None without one.

    Args:
        student_tap, teacher_tap: the student's last conv map and the teacher's last-stage tokens.
        center_grid: side of the square grid of local centers (L = side², 7 → 49).
        dim, num_heads, mlp_ratio: URFM / MSA width, heads and the MSA layer's MLP ratio.
        qk_init: ``'unit'`` (default): centers N(0, 1) and query/key projections normal(0, 1/d), so the
            attention maps are not uniform at init; ``'trunc_normal'``: everything trunc-normal(0.02), the
            behaviour before this option (inert attention term).
        facial_pe: ``'euclidean+saliency'`` (default), ``'euclidean+relative'``, ``'euclidean'`` or
            ``'none'`` (no positional encoding on the queries).
        irpe_ratio: r of the piecewise index (α, β, γ = r, 2r, 8r).
        gamma: weight γ of D_face in D.
        saliency_sigma: σ of the landmark Gaussians, in grid cells.
        pe_anchor: the landmark the distances are measured from (one of ``LANDMARK_NAMES``).
        landmarks: five (x, y) landmarks in 112×112 pixels (default: the ArcFace template).
        attn_weight, feat_weight, anchor_weight: λ of the three loss terms.
        teacher_ema, ema_momentum: collapse guard (a), EMA teacher-branch copies of the shared weights.
        prompt_anchor: collapse guard (b), the prompt-anchor cosine loss; ``None`` turns it on when the teacher
            has an ``apt`` adapter (any adapter providing :class:`~kdzoo.adapters.interfaces.PromptOutputs`),
            True requires one.
        **kwargs: :class:`BaseDistiller` arguments (``loss_weight``, ``schedule``, ``teacher``).
    """

    adapter_needs = (AdapterNeed('prompts', PromptOutputs, on='teacher', required=False, suggest='apt'),)

    def __init__(self, student_tap='stage4', teacher_tap='stage4', center_grid=7, dim=512, num_heads=8,
                 mlp_ratio=4, qk_init='unit', facial_pe='euclidean+saliency', irpe_ratio=1.9, gamma=1.0,
                 saliency_sigma=1.0, pe_anchor='nose', landmarks=ARCFACE_TEMPLATE_112, attn_weight=1.0,
                 feat_weight=1.0, anchor_weight=1.0, teacher_ema=True, ema_momentum=0.999, prompt_anchor=None,
                 **kwargs):
        super().__init__(**kwargs)
        self._check_arguments(center_grid, dim, num_heads, qk_init, facial_pe, irpe_ratio, pe_anchor,
                              landmarks, ema_momentum, (attn_weight, feat_weight, anchor_weight))
        self.student_tap, self.teacher_tap = student_tap, teacher_tap
        self.center_grid, self.dim, self.num_heads, self.mlp_ratio = int(center_grid), int(dim), int(num_heads), \
            int(mlp_ratio)
        self.qk_init = qk_init
        self.facial_pe, self.irpe_ratio = facial_pe, float(irpe_ratio)
        self.gamma, self.saliency_sigma = float(gamma), float(saliency_sigma)
        self.pe_anchor, self.landmarks = pe_anchor, tuple(tuple(map(float, p)) for p in landmarks)
        self.attn_weight, self.feat_weight, self.anchor_weight = float(attn_weight), float(feat_weight), \
            float(anchor_weight)
        self.teacher_ema, self.ema_momentum = bool(teacher_ema), float(ema_momentum)
        self.student_taps = (student_tap,)
        self.use_prompt_anchor(prompt_anchor)
        self.queries = LocalCenterQueries(self.center_grid ** 2, self.dim, self._positional_encoding())
        self.msa = MSALayer(self.dim, self.num_heads, self.mlp_ratio)
        init_linear_layers(self)
        self._init_query_key(self.queries, self.msa)
        self.student_mapping = None
        self.teacher_mapping = None
        self._tap_path = None      # the teacher module the tap reads, whose prompt outputs join f^T

    def _check_arguments(self, center_grid, dim, num_heads, qk_init, facial_pe, irpe_ratio, pe_anchor,
                         landmarks, ema_momentum, weights):
        if int(center_grid) < 1:
            raise ValueError(f"urfm: center_grid must be >= 1, got {center_grid}")
        if dim % num_heads:
            raise ValueError(f"urfm: dim must be divisible by num_heads, got {dim} / {num_heads}")
        if qk_init not in QK_INITS:
            raise ValueError(f"urfm: qk_init must be one of {QK_INITS}, got {qk_init!r}")
        if facial_pe not in FACIAL_PES:
            raise ValueError(f"urfm: facial_pe must be one of {FACIAL_PES}, got {facial_pe!r}")
        positive('urfm', 'irpe_ratio', irpe_ratio)
        if pe_anchor not in LANDMARK_NAMES:
            raise ValueError(f"urfm: pe_anchor must be one of {LANDMARK_NAMES}, got {pe_anchor!r}")
        if len(landmarks) != len(LANDMARK_NAMES) or any(len(p) != 2 for p in landmarks):
            raise ValueError(f"urfm: landmarks must be five (x, y) points ({', '.join(LANDMARK_NAMES)}), "
                             f"got {landmarks!r}")
        if not 0 <= ema_momentum < 1:
            raise ValueError(f"urfm: ema_momentum must be in [0, 1), got {ema_momentum}")
        for name, weight in zip(('attn_weight', 'feat_weight', 'anchor_weight'), weights):
            non_negative('urfm', name, weight)

    def _positional_encoding(self):
        if self.facial_pe == 'none':
            return None
        distances = center_distances(self.facial_pe, self.center_grid, self.landmarks,
                                     LANDMARK_NAMES.index(self.pe_anchor), self.gamma, self.saliency_sigma)
        return FacialPositionalEncoding(irpe_piecewise_index(distances, self.irpe_ratio),
                                        num_buckets(self.irpe_ratio), self.dim)

    def _init_query_key(self, *modules):
        """``qk_init='unit'``: unit-variance queries and keys in both attentions, the premise of the
        1/√d_h scale; ``'trunc_normal'`` keeps trunc-normal(0.02) centers and linears, whose logits are ~1e-2
        and make every attention map uniform."""
        if self.qk_init == 'unit':
            with torch.no_grad():
                for module in modules:
                    module.init_unit_variance()

    # ------------------------------------------------------------------ set-up
    def use_prompt_anchor(self, prompt_anchor):
        """Switch guard (b); it reads the teacher's embedding and re-runs the teacher without prompts."""
        self.prompt_anchor = prompt_anchor if prompt_anchor is None else bool(prompt_anchor)
        self.reads_bare_teacher = bool(prompt_anchor)
        self.teacher_taps = (self.teacher_tap, 'logits') if prompt_anchor else (self.teacher_tap,)

    def bind(self, teacher_names, adapters=(), models=None):
        super().bind(teacher_names, adapters, models)
        prompts = self.adapter('prompts')
        if prompts is None and self.prompt_anchor:
            raise ValueError(f"urfm: prompt_anchor=True needs an 'apt' adapter (or another one providing "
                             f"PromptOutputs) on teacher {self.teacher!r} (adapters=[dict(type='apt', "
                             f"target={self.teacher!r})]); or set prompt_anchor=False")
        if self.prompt_anchor is None:
            self.use_prompt_anchor(prompts is not None)
        self._tap_path = resolve_tap(unwrap(models[self.teacher]), self.teacher_tap).module_path
        if prompts is not None and self._tap_path not in prompts.prompted_paths:
            raise ValueError(f"urfm: teacher tap {self.teacher_tap!r} is module {self._tap_path!r}, which "
                             f"{type(prompts).__name__} does not prompt, so f^T = [tokens, prompt outputs] cannot "
                             f"be formed; tap one of {list(prompts.prompted_paths)}")

    def build(self, student_specs, teacher_specs):
        if self.prompt_anchor and not self.is_bound:
            raise RuntimeError("urfm: bind() must run before build() when the prompt anchor is on (DistillModel "
                               "does both)")
        student_spec, teacher_spec = student_specs[self.student_tap], teacher_specs[self.teacher_tap]
        if student_spec.kind not in ('map', 'tokens') or teacher_spec.kind not in ('map', 'tokens'):
            raise shape_error('urfm', 'URFM reads a feature map or tokens on both sides', student_spec,
                              teacher_spec)
        if self.prompt_anchor and len(teacher_specs['logits'].shape) != 1:
            raise ValueError(f"urfm: the prompt anchor compares the teacher's output embeddings, but its output "
                             f"is {teacher_specs['logits'].describe()}; set prompt_anchor=False")
        self.student_mapping = ReceptiveFieldMapping(student_spec.channels, self.dim, self.num_heads)
        self.teacher_mapping = ReceptiveFieldMapping(teacher_spec.channels, self.dim, self.num_heads)
        init_linear_layers(self.student_mapping)
        init_linear_layers(self.teacher_mapping)
        self._init_query_key(self.student_mapping, self.teacher_mapping)
        if self.teacher_ema:
            self.ema_queries = buffer_copy(self.queries)
            self.ema_msa = buffer_copy(self.msa)

    # ------------------------------------------------------------------ EMA guard
    @torch.no_grad()
    def update_ema(self):
        """copy ← m·copy + (1 − m)·online for the shared weights (centers, W_q, bucket table, MSA)."""
        for online, ema in ((self.queries, self.ema_queries), (self.msa, self.ema_msa)):
            for name, param in online.named_parameters():
                ema.get_buffer(name).mul_(self.ema_momentum).add_(param.detach(), alpha=1 - self.ema_momentum)

    def teacher_branch(self):
        """(queries, MSA layer) the teacher branch runs with."""
        if self.teacher_ema:
            return self.ema_queries, self.ema_msa
        return self.queries, self.msa

    # ------------------------------------------------------------------ losses
    def teacher_prompt_outputs(self):
        """(B, t, d) prompt outputs of the tapped teacher layer in the latest teacher forward; None when the
        teacher has no prompt adapter or ran without prompts."""
        prompts = self.adapter('prompts') if self.is_bound else None
        return None if prompts is None else prompts.last_prompt_outputs(self._tap_path)

    def teacher_tokens(self, teacher, prompts):
        """f^T: the tapped teacher tokens, followed by that layer's prompt outputs when the teacher prompted."""
        tokens = teacher[self.teacher_tap].patch_tokens()
        if prompts is None:
            return tokens
        return torch.cat([tokens, prompts.to(tokens.dtype)], dim=1)

    def compute_losses(self, student, teacher, labels):
        if self.training and self.teacher_ema:
            self.update_ema()
        prompts = self.teacher_prompt_outputs()
        teacher_features = self.teacher_tokens(teacher, prompts)
        student_local = self.student_mapping(student[self.student_tap].patch_tokens(), self.queries())
        teacher_queries, teacher_msa = self.teacher_branch()
        teacher_local = self.teacher_mapping(teacher_features, teacher_queries())
        student_out, student_attn = self.msa(student_local)
        teacher_out, teacher_attn = teacher_msa(teacher_local)
        losses = {'loss_urfm_attn': self.attn_weight * F.mse_loss(student_attn, teacher_attn),
                  'loss_urfm_feat': self.feat_weight * F.mse_loss(student_out, teacher_out)}
        if self.prompt_anchor:
            losses['loss_urfm_anchor'] = self.anchor_weight * self.anchor_loss(
                teacher['logits'].data, teacher[BARE_TEACHER_OUTPUT].data, prompted=prompts is not None)
        return losses

    def anchor_loss(self, prompted_embedding, frozen_embedding, prompted=True):
        if not prompted:  # the teacher ran bare: the anchor is exactly 0
            return prompted_embedding.new_zeros(())
        return prompt_anchor_loss(prompted_embedding, frozen_embedding)

    def extra_repr(self):
        return (f"{super().extra_repr()}, taps={self.student_tap}->{self.teacher_tap}, "
                f"centers={self.center_grid}x{self.center_grid}, dim={self.dim}, heads={self.num_heads}, "
                f"qk_init={self.qk_init!r}, "
                f"facial_pe={self.facial_pe!r}, irpe_ratio={self.irpe_ratio}, teacher_ema={self.teacher_ema}, "
                f"prompt_anchor={self.prompt_anchor}")
