"""DIST: Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022 (docs/methods/dist.md).

DIST matches relations instead of probabilities. With Y = softmax(Z / τ) for student and teacher (B×K) and
d_p(u, v) = 1 − Pearson(u, v), the cosine similarity of the mean-centred vectors (eps 1e-8 added to the
product of norms, as in the reference code ``hunto/DIST_KD``):

* inter-class: L_inter = mean over samples b of d_p(Y^s_b, Y^t_b)   (rows: each sample's class ranking);
* intra-class: L_intra = mean over classes k of d_p(Y^s_{:,k}, Y^t_{:,k})   (columns: across the batch).

Returned as ``loss_dist_inter`` = β·τ²·L_inter and ``loss_dist_intra`` = γ·τ²·L_intra; the hard-label CE
is DistillModel's task loss. Defaults β = γ = 1, τ = 1 (ImageNet and the OFA/PAT heterogeneous code); use
``temperature=4`` for homogeneous CIFAR-100 benchmarks (the authors' "dist_t4" setting, docs/methods/dist.md).
Because softmax ignores a per-sample constant added to the logits, so does the loss; the inter-class term is
moreover invariant to any per-sample positive affine map of the probabilities.
"""
import torch
import torch.nn.functional as F

from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import non_negative, positive
from kdzoo.distillers.base import BaseDistiller

PEARSON_EPS = 1e-8


def at_least_fp32(x):
    return x.to(torch.promote_types(x.dtype, torch.float32))


def pearson_rows(a, b, eps=PEARSON_EPS):
    """Pearson correlation of every row of ``a`` with the same row of ``b``: (N, M), (N, M) → (N,)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def inter_class_relation(student_probs, teacher_probs):
    """Mean over samples of 1 − Pearson across classes."""
    return 1 - pearson_rows(student_probs, teacher_probs).mean()


def intra_class_relation(student_probs, teacher_probs):
    """Mean over classes of 1 − Pearson across the batch."""
    return inter_class_relation(student_probs.t(), teacher_probs.t())


def dist_losses(student_logits, teacher_logits, beta=1.0, gamma=1.0, temperature=1.0):
    """``(β·τ²·L_inter, γ·τ²·L_intra)`` for (B, K) logits."""
    student_probs = F.softmax(at_least_fp32(student_logits) / temperature, dim=1)
    teacher_probs = F.softmax(at_least_fp32(teacher_logits) / temperature, dim=1)
    scale = temperature ** 2
    return (beta * scale * inter_class_relation(student_probs, teacher_probs),
            gamma * scale * intra_class_relation(student_probs, teacher_probs))


@DISTILLERS.register_module(name=['dist', 'DIST'])
class DIST(BaseDistiller):
    """Args: ``beta`` (inter-class weight), ``gamma`` (intra-class weight), ``temperature`` (τ)."""
    student_taps = ('logits',)
    teacher_taps = ('logits',)
    matching_taps = (('logits', 'logits'),)

    def __init__(self, beta=1.0, gamma=1.0, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = positive('dist', 'temperature', temperature)
        self.beta, self.gamma = non_negative('dist', 'beta', beta), non_negative('dist', 'gamma', gamma)

    def compute_losses(self, student, teacher, labels):
        inter, intra = dist_losses(student['logits'].data, teacher['logits'].data,
                                   self.beta, self.gamma, self.temperature)
        return {'loss_dist_inter': inter, 'loss_dist_intra': intra}
