"""RKD: Park et al., "Relational Knowledge Distillation", CVPR 2019 (docs/methods/rkd.md).

RKD transfers the geometry of a batch of embeddings (B×d; student and teacher widths may differ, no
projector is needed):

* distance-wise: ψ_D(i, j) = ‖e_i − e_j‖₂ / μ, with μ the mean of the positive pairwise distances in the
  batch; squared distances are clamped at 1e-12 before the square root and the diagonal is zeroed.
  L_D = SmoothL1(ψ_D^s, ψ_D^t) over the B×B matrix.
* angle-wise: ψ_A(i, j, k) = ⟨normalize(e_j − e_i), normalize(e_k − e_i)⟩, the cosine of the angle at
  e_i, for all B³ triplets (degenerate ones are 0 on both sides); L_A = SmoothL1(ψ_A^s, ψ_A^t). This costs
  O(B³·d) memory: keep B ≤ 128.

SmoothL1 is PyTorch's (Huber with δ = 1, mean over elements), as in the paper's and mdistiller's code. The
teacher's potentials are computed without grad. Both potentials are invariant to translating, rotating
and (for the normalised distances and the angles) uniformly scaling an embedding set.

Returned as ``loss_rkd_distance`` = 25·L_D and ``loss_rkd_angle`` = 50·L_A (mdistiller's weights; a term
with weight 0 is not computed). The embeddings are the ``pre_logits`` taps by default; any other tap is
pooled first (maps: global average; tokens: mean of the patch tokens). A batch of one sample has no pairs;
its losses are 0.
"""
import torch
import torch.nn.functional as F

from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import non_negative, positive
from kdzoo.distillers.base import BaseDistiller, shape_error

DISTANCE_EPS = 1e-12


def at_least_fp32(x):
    return x.to(torch.promote_types(x.dtype, torch.float32))


def pairwise_distances(embeddings, eps=DISTANCE_EPS):
    """(B, B) Euclidean distances, squared values clamped at ``eps``, zero diagonal."""
    squared_norms = embeddings.pow(2).sum(1)
    squared = squared_norms.unsqueeze(1) + squared_norms.unsqueeze(0) - 2 * embeddings @ embeddings.t()
    distances = squared.clamp(min=eps).sqrt()
    diagonal = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    return distances.masked_fill(diagonal, 0)


def distance_potential(embeddings):
    """Pairwise distances divided by their mean over the positive entries."""
    distances = pairwise_distances(embeddings)
    return distances / distances[distances > 0].mean()


def angle_potential(embeddings):
    """(B, B, B): entry [i, j, k] is the cosine of the angle at e_i between e_j and e_k."""
    directions = F.normalize(embeddings.unsqueeze(0) - embeddings.unsqueeze(1), p=2, dim=2)
    return torch.bmm(directions, directions.transpose(1, 2))


def rkd_losses(student_embeddings, teacher_embeddings, distance_weight=25.0, angle_weight=50.0):
    """``{'loss_rkd_distance': w_D·L_D, 'loss_rkd_angle': w_A·L_A}`` for (B, d_s) and (B, d_t) embeddings."""
    student = at_least_fp32(student_embeddings.flatten(1))
    teacher = at_least_fp32(teacher_embeddings.flatten(1))
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"rkd: student and teacher batches differ: {student.shape[0]} vs {teacher.shape[0]}")
    terms = {'loss_rkd_distance': (distance_weight, distance_potential),
             'loss_rkd_angle': (angle_weight, angle_potential)}
    losses = {}
    for name, (weight, potential) in terms.items():
        if weight == 0:
            continue
        if student.shape[0] < 2:
            losses[name] = student.sum() * 0.0
            continue
        with torch.no_grad():
            target = potential(teacher)
        losses[name] = weight * F.smooth_l1_loss(potential(student), target)
    return losses


@DISTILLERS.register_module(name=['rkd', 'RKD'])
class RKD(BaseDistiller):
    """Args: ``distance_weight`` (25), ``angle_weight`` (50), ``student_tap`` / ``teacher_tap``
    (``'pre_logits'``; any tap, pooled to one vector per sample)."""

    def __init__(self, distance_weight=25.0, angle_weight=50.0, student_tap='pre_logits',
                 teacher_tap='pre_logits', **kwargs):
        super().__init__(**kwargs)
        self.distance_weight = non_negative('rkd', 'distance_weight', distance_weight)
        self.angle_weight = non_negative('rkd', 'angle_weight', angle_weight)
        self.student_tap, self.teacher_tap = student_tap, teacher_tap
        self.student_taps, self.teacher_taps = (student_tap,), (teacher_tap,)

    def build(self, student_specs, teacher_specs):
        student, teacher = student_specs[self.student_tap], teacher_specs[self.teacher_tap]
        if 'attn' in (student.kind, teacher.kind):
            raise shape_error('rkd', 'attention maps cannot be pooled into embeddings; tap features',
                              student, teacher)

    def compute_losses(self, student, teacher, labels):
        return rkd_losses(student[self.student_tap].pooled(), teacher[self.teacher_tap].pooled(),
                          self.distance_weight, self.angle_weight)

    def extra_repr(self):
        return (f"{super().extra_repr()}, taps=({self.student_tap!r}, {self.teacher_tap!r}), "
                f"distance_weight={self.distance_weight}, angle_weight={self.angle_weight}")
