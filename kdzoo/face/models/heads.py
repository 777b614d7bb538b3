"""Margin-softmax heads for face recognition: ArcFace, CosFace, their combination, and Partial FC.

Papers: Wang et al., "CosFace: Large Margin Cosine Loss" (CVPR 2018); Deng et al., "ArcFace: Additive
Angular Margin Loss" (CVPR 2019), whose combined margin cos(m1*theta + m2) - m3 also covers SphereFace (m1);
An et al., "Partial FC: Training 10 Million Identities on a Single Machine" (ICCVW 2021) and "Killing Two
Birds with One Stone: Efficient and Robust Training of Face Recognition CNNs by Partial FC" (CVPR 2022).
Reference code: insightface ``recognition/arcface_torch`` (``losses.py``, ``partial_fc_v2.py``).

Logits are s * cos(theta) for every class except the target, which gets s * (cos(m1*theta + m2) - m3);
embeddings and class centres are L2-normalised first. Unlike arcface_torch's current in-place no-grad
margin, the margin here is an ordinary differentiable expression.
"""
import math
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from kdzoo.registry import MODELS

__all__ = ['MARGIN_PRESETS', 'CombinedMargin', 'CombinedMarginHead', 'ArcFaceHead', 'CosFaceHead',
           'PartialFC', 'sharded_parameter_names', 'exclude_sharded_centres_from_ddp']

# (m1, m2, m3) of the usual settings (docs/face_reference.md §6).
MARGIN_PRESETS: Dict[str, Dict[str, float]] = {
    'arcface': dict(m1=1.0, m2=0.5, m3=0.0),
    'cosface': dict(m1=1.0, m2=0.0, m3=0.35),
    'combined': dict(m1=1.0, m2=0.3, m3=0.2),
}
# Keeps sin(theta) = sqrt(1 - cos^2) and its gradient finite when an embedding sits on its class centre.
SIN_SQUARED_MIN = 1e-6
ACOS_EPS = 1e-6


def margin_loss_name(m1: float, m2: float, m3: float) -> str:
    """The loss key a margin setting logs under: loss_arcface, loss_cosface, loss_sphereface, ..."""
    if m1 == 1.0 and m3 == 0.0 and m2 > 0.0:
        return 'loss_arcface'
    if m1 == 1.0 and m2 == 0.0 and m3 > 0.0:
        return 'loss_cosface'
    if m1 != 1.0 and m2 == 0.0 and m3 == 0.0:
        return 'loss_sphereface'
    if m1 == 1.0 and m2 == 0.0 and m3 == 0.0:
        return 'loss_normface'
    return 'loss_combined_margin'


class CombinedMargin(nn.Module):
    """Parameter-free combined margin: turns cosines into scaled logits with the target margin applied.

    Args:
        s: logit scale.
        m1, m2, m3: multiplicative angular, additive angular and additive cosine margins.
        easy_margin: apply the angular margin only where cos(theta) > 0 and leave other targets unchanged;
            otherwise (default) targets past the threshold use insightface's fallback, see ``target_cosine``.
    """

    def __init__(self, s: float = 64.0, m1: float = 1.0, m2: float = 0.5, m3: float = 0.0,
                 easy_margin: bool = False):
        super().__init__()
        if m1 <= 0:
            raise ValueError(f'the multiplicative margin m1 must be positive, got {m1}')
        self.s, self.m1, self.m2, self.m3 = float(s), float(m1), float(m2), float(m3)
        self.easy_margin = easy_margin
        # m1*theta + m2 reaches pi at theta_max; beyond it cos(m1*theta + m2) would rise again, i.e. the
        # "margin" would reward a worse angle.
        self.theta_max = (math.pi - self.m2) / self.m1
        self.cos_theta_max = math.cos(self.theta_max)
        # First-order penalty at the threshold: cos(theta + d) ~ cos(theta) - d*sin(theta), with the extra
        # angle d = pi - theta_max. For m1 = 1 this is insightface's sin(pi - m2) * m2.
        self.fallback_penalty = (math.pi - self.theta_max) * math.sin(self.theta_max)

    @property
    def has_angular_margin(self) -> bool:
        return self.m1 != 1.0 or self.m2 != 0.0

    def angular_target(self, cos_t: torch.Tensor) -> torch.Tensor:
        """cos(m1*theta + m2). For m1 = 1 through cos*cos(m2) - sin*sin(m2), avoiding acos, whose gradient
        is infinite at cos = +-1."""
        if self.m1 == 1.0:
            sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp(min=SIN_SQUARED_MIN))
            return cos_t * math.cos(self.m2) - sin_t * math.sin(self.m2)
        theta = torch.acos(cos_t.clamp(-1.0 + ACOS_EPS, 1.0 - ACOS_EPS))
        return torch.cos(self.m1 * theta + self.m2)

    def target_cosine(self, cos_t: torch.Tensor) -> torch.Tensor:
        """The margined target cosine cos(m1*theta + m2) - m3, with the threshold / easy-margin fallback."""
        if not self.has_angular_margin:
            return cos_t - self.m3
        phi = self.angular_target(cos_t)
        if self.easy_margin:
            phi = torch.where(cos_t > 0, phi, cos_t)
        elif self.theta_max < math.pi:
            phi = torch.where(cos_t > self.cos_theta_max, phi, cos_t - self.fallback_penalty)
        return phi - self.m3

    def forward(self, cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, C) cosines, (N,) labels in [0, C) or -1 for rows whose target is not among these columns
        -> (N, C) scaled logits."""
        has_target = labels >= 0
        index = labels.clamp(min=0).unsqueeze(1)
        cos_t = cosine.gather(1, index)
        margined = torch.where(has_target.unsqueeze(1), self.target_cosine(cos_t), cos_t)
        return cosine.scatter(1, index, margined) * self.s

    def extra_repr(self) -> str:
        return f's={self.s}, m1={self.m1}, m2={self.m2}, m3={self.m3}, easy_margin={self.easy_margin}'


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def normalized_cosine(embeddings: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """cos(theta) between rows of ``embeddings`` and ``centres``, clamped to [-1, 1]; computed in at least
    float32, also under AMP, because the margin's sqrt(1 - cos^2) and the scale s = 64 amplify fp16 error."""
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        cosine = F.linear(F.normalize(at_least_float32(embeddings), dim=1),
                          F.normalize(at_least_float32(centres), dim=1))
    return cosine.clamp(-1.0, 1.0)


@MODELS.register_module()
class CombinedMarginHead(nn.Module):
    """Margin-softmax classifier: class centres plus a combined margin; returns the cross-entropy loss.

    Args:
        num_classes: number of identities.
        embed_dim: embedding size.
        s, m1, m2, m3, easy_margin: see :class:`CombinedMargin`. Presets in ``MARGIN_PRESETS``: ArcFace
            (1, 0.5, 0), CosFace (1, 0, 0.35), insightface's combined (1, 0.3, 0.2).
        loss_name: key of the loss in ``FaceRecognizer.task_loss``; derived from the margins by default.

    ``forward(embeddings, labels)`` normalises the embeddings itself (normalised input is fine too).
    """

    def __init__(self, num_classes: int, embed_dim: int = 512, s: float = 64.0, m1: float = 1.0,
                 m2: float = 0.5, m3: float = 0.0, easy_margin: bool = False, loss_name: Optional[str] = None):
        super().__init__()
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.margin = CombinedMargin(s, m1, m2, m3, easy_margin)
        self.loss_name = loss_name or margin_loss_name(m1, m2, m3)
        # arcface_torch initialises the centres with N(0, 0.01).
        self.weight = nn.Parameter(torch.normal(0, 0.01, (num_classes, embed_dim)))

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, num_classes) scaled logits with the margin on each row's target."""
        return self.margin(normalized_cosine(embeddings, self.weight), labels.reshape(-1).long())

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                return_logits: bool = False) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        labels = labels.reshape(-1).long()
        logits = self.logits(embeddings, labels)
        loss = F.cross_entropy(logits, labels)
        return (loss, logits) if return_logits else loss


@MODELS.register_module()
class ArcFaceHead(CombinedMarginHead):
    """ArcFace: target logit s * cos(theta + m), default m = 0.5 (EKD / URFM use 0.4 or 0.5)."""

    def __init__(self, num_classes: int, embed_dim: int = 512, s: float = 64.0, m: float = 0.5,
                 easy_margin: bool = False, loss_name: Optional[str] = 'loss_arcface'):
        super().__init__(num_classes, embed_dim, s, m1=1.0, m2=m, m3=0.0, easy_margin=easy_margin,
                         loss_name=loss_name)


@MODELS.register_module()
class CosFaceHead(CombinedMarginHead):
    """CosFace: target logit s * (cos(theta) - m), default m = 0.35 (0.4 in the paper's large-scale runs)."""

    def __init__(self, num_classes: int, embed_dim: int = 512, s: float = 64.0, m: float = 0.35,
                 loss_name: Optional[str] = 'loss_cosface'):
        super().__init__(num_classes, embed_dim, s, m1=1.0, m2=0.0, m3=m, loss_name=loss_name)


# ----------------------------------------------------------------------------------------------------------
# Partial FC


def distributed_world() -> Tuple[int, int]:
    """(rank, world_size), (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllReduceReplicated(torch.autograd.Function):
    """Sum over ranks, for a loss that every rank then computes identically (the global-batch loss).

    Each rank's input enters the sum once and every rank holds the same downstream gradient, so the
    gradient w.r.t. the local input is that gradient unchanged. (``torch.distributed.nn.all_reduce`` would
    sum it over ranks, i.e. treat the objective as the sum of the ranks' identical copies.)
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class _AllGatherScaledGrad(torch.autograd.Function):
    """Concatenate equal-size tensors from every rank along dim 0.

    Backward: each rank holds the gradient that flowed through its own class shard; the true gradient of a
    rank's rows is the sum over ranks. It is then multiplied by the world size, as arcface_torch does, so
    that DDP's averaging of backbone gradients yields the gradient of the global-batch loss.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        rank, world_size = distributed_world()
        ctx.rank, ctx.world_size, ctx.rows = rank, world_size, tensor.shape[0]
        chunks = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(chunks, tensor.contiguous())
        return torch.cat(chunks, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        own = grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]
        return own * ctx.world_size


def all_gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    chunks = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(chunks, tensor.contiguous())
    return torch.cat(chunks, dim=0)


def shard_range(num_classes: int, rank: int, world_size: int) -> Tuple[int, int]:
    """(first class, number of classes) of ``rank``'s shard; the first ``num_classes % world_size`` ranks
    hold one extra class."""
    base, extra = divmod(num_classes, world_size)
    return base * rank + min(rank, extra), base + int(rank < extra)


def sharded_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, world_size: int) -> torch.Tensor:
    """Mean cross-entropy over rows whose classes are split column-wise across ranks.

    ``logits`` (N, C_local) are this rank's columns; ``labels`` index into them, -1 where a row's target
    lives on another rank. Each row's target is on exactly one rank.
    """
    max_logit = logits.detach().max(dim=1, keepdim=True).values
    if world_size > 1:
        dist.all_reduce(max_logit, op=dist.ReduceOp.MAX)
    sum_exp = (logits - max_logit).exp().sum(dim=1)
    has_target = labels >= 0
    target = logits.gather(1, labels.clamp(min=0).unsqueeze(1)).squeeze(1) * has_target
    if world_size > 1:
        sum_exp = _AllReduceReplicated.apply(sum_exp)
        target = _AllReduceReplicated.apply(target)
    return (max_logit.squeeze(1) + sum_exp.log() - target).mean()


@MODELS.register_module()
class PartialFC(nn.Module):
    """Margin-softmax head with class centres sharded across ranks and optional negative-centre sampling.

    Under torch.distributed each rank holds ``num_classes / world_size`` centres (the first
    ``num_classes % world_size`` ranks one more). Embeddings and labels of the whole global batch are
    all-gathered, every rank scores them against its centres, and the softmax normaliser and target logits
    are summed across ranks. The returned loss is the mean over the global batch, identical on every rank
    and equal to the full-softmax loss of :class:`CombinedMarginHead` (with ``sample_rate`` 1).

    Gradients: the local centres get the exact gradient of that loss; embeddings get it times the world
    size, so that DDP's averaging over ranks gives the exact backbone gradient (arcface_torch's convention).
    The centres must therefore NOT be synchronised by DDP: call :func:`exclude_sharded_centres_from_ddp` on
    the model before it is wrapped. All ranks must pass the same batch size. With world_size 1 it is an
    ordinary margin-softmax head.

    Args:
        num_classes, embed_dim, s, m1, m2, m3, easy_margin, loss_name: as :class:`CombinedMarginHead`.
        sample_rate: fraction of each rank's centres used per step (Partial FC's r). Every centre of a class
            present in the global batch is kept; the rest are drawn uniformly. 1.0 uses all of them.

    ``forward(..., return_logits=True)`` also returns this rank's (gathered-batch x sampled-centre) logits.
    """

    def __init__(self, num_classes: int, embed_dim: int = 512, s: float = 64.0, m1: float = 1.0,
                 m2: float = 0.5, m3: float = 0.0, sample_rate: float = 1.0, easy_margin: bool = False,
                 loss_name: Optional[str] = None):
        super().__init__()
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f'PartialFC sample_rate must be in (0, 1], got {sample_rate}')
        self.rank, self.world_size = distributed_world()
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.class_start, self.num_local = shard_range(num_classes, self.rank, self.world_size)
        self.sample_rate = sample_rate
        self.num_sample = int(sample_rate * self.num_local)
        self.margin = CombinedMargin(s, m1, m2, m3, easy_margin)
        self.loss_name = loss_name or margin_loss_name(m1, m2, m3)
        self.weight = nn.Parameter(torch.normal(0, 0.01, (self.num_local, embed_dim)))
        # Local indices of the centres used in the last step (all of them when sample_rate == 1).
        self.sampled_index: Optional[torch.Tensor] = None

    def gather_batch(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.world_size == 1:
            return embeddings, labels
        return _AllGatherScaledGrad.apply(embeddings), all_gather_no_grad(labels)

    def to_local_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Global class ids -> indices into this rank's centres, -1 for classes held elsewhere."""
        local = labels - self.class_start
        return torch.where((local >= 0) & (local < self.num_local), local, torch.full_like(local, -1))

    @torch.no_grad()
    def sample_centres(self, local_labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pick ``num_sample`` centres (more if the batch has more positive classes), all positives
        included; return their sorted indices and the labels re-indexed into them."""
        positives = torch.unique(local_labels[local_labels >= 0])
        num_sample = max(self.num_sample, positives.numel())
        score = torch.rand(self.num_local, device=self.weight.device)
        score[positives] = 2.0  # above any uniform draw: positives always make the top-k
        index = torch.topk(score, k=num_sample).indices.sort().values
        remapped = torch.searchsorted(index, local_labels.clamp(min=0))
        return index, torch.where(local_labels >= 0, remapped, local_labels)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                return_logits: bool = False) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        embeddings, labels = self.gather_batch(embeddings, labels.reshape(-1).long())
        local_labels = self.to_local_labels(labels)
        centres = self.weight
        if self.sample_rate < 1.0:
            self.sampled_index, local_labels = self.sample_centres(local_labels)
            centres = self.weight[self.sampled_index]
        else:
            self.sampled_index = None
        logits = self.margin(normalized_cosine(embeddings, centres), local_labels)
        loss = sharded_cross_entropy(logits, local_labels, self.world_size)
        return (loss, logits) if return_logits else loss

    @torch.no_grad()
    def full_centres(self) -> torch.Tensor:
        """All ``num_classes`` centres, gathered from every rank (a collective: call it on all ranks)."""
        if self.world_size == 1:
            return self.weight.detach().clone()
        largest = shard_range(self.num_classes, 0, self.world_size)[1]
        padded = self.weight.new_zeros(largest, self.embed_dim)
        padded[:self.num_local] = self.weight
        gathered = all_gather_no_grad(padded).view(self.world_size, largest, self.embed_dim)
        sizes = [shard_range(self.num_classes, r, self.world_size)[1] for r in range(self.world_size)]
        return torch.cat([gathered[r, :n] for r, n in enumerate(sizes)], dim=0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint holding all centres (single-process training, or ``full_centres``) loads into any
        # world size: keep this rank's rows.
        key = prefix + 'weight'
        weight = state_dict.get(key)
        if weight is not None and weight.shape[0] == self.num_classes != self.num_local:
            state_dict[key] = weight[self.class_start:self.class_start + self.num_local]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, embed_dim={self.embed_dim}, rank={self.rank}, '
                f'world_size={self.world_size}, num_local={self.num_local}, sample_rate={self.sample_rate}')


def sharded_parameter_names(model: nn.Module) -> List[str]:
    """Qualified names of the centres every sharded :class:`PartialFC` in ``model`` holds."""
    return [f'{name}.weight' if name else 'weight' for name, module in model.named_modules()
            if isinstance(module, PartialFC) and module.world_size > 1]


def exclude_sharded_centres_from_ddp(model: nn.Module) -> List[str]:
    """Tell DDP not to average the sharded centres (each rank holds different classes).

    Call on the module that DistributedDataParallel (or mmengine's wrapper) will wrap, before wrapping.
    Returns the excluded names.
    """
    names = sharded_parameter_names(model)
    if names:
        from torch.nn.parallel import DistributedDataParallel
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, names)
    return names
