"""DKD: Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022 (docs/methods/dkd.md).

KD = TCKD + (1 − p_t^T)·NCKD; DKD weights the parts independently:
L = T² · (α·TCKD + β·NCKD), averaged over the batch. TCKD is the KL between the binary distributions
[p_target, 1 − p_target]; NCKD the KL between the distributions over the non-target classes, computed as
in mdistiller by subtracting 1000 from the target logit (after dividing by T). The warm-up of the paper,
w(e) = min(e / E_warm, 1) with epochs counted from 1, is ``schedule=dict(warmup=20)``.
Defaults: OFA/PAT heterogeneous code (α = 1, β = 2, T = 1, no warm-up); mdistiller CIFAR-100 is
α = 1, β = 8, T = 4, warm-up 20.
"""
import torch
import torch.nn.functional as F

from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import non_negative, positive
from kdzoo.distillers.base import BaseDistiller

MASK_MAGNITUDE = 1000.0


def binary_probs(probs, target_mask):
    target = (probs * target_mask).sum(1, keepdim=True)
    rest = (probs * ~target_mask).sum(1, keepdim=True)
    return torch.cat([target, rest], dim=1)


def dkd_loss(student_logits, teacher_logits, labels, alpha, beta, temperature):
    target_mask = F.one_hot(labels, student_logits.shape[1]).bool()
    s, t = student_logits / temperature, teacher_logits / temperature
    b_student = binary_probs(F.softmax(s, dim=1), target_mask)
    b_teacher = binary_probs(F.softmax(t, dim=1), target_mask)
    tckd = F.kl_div(b_student.clamp_min(1e-12).log(), b_teacher, reduction='batchmean')
    log_nt_student = F.log_softmax(s - MASK_MAGNITUDE * target_mask, dim=1)
    log_nt_teacher = F.log_softmax(t - MASK_MAGNITUDE * target_mask, dim=1)
    nckd = F.kl_div(log_nt_student, log_nt_teacher, reduction='batchmean', log_target=True)
    return temperature ** 2 * (alpha * tckd + beta * nckd)


@DISTILLERS.register_module(name=['dkd', 'DKD'])
class DKD(BaseDistiller):
    student_taps = ('logits',)
    teacher_taps = ('logits',)
    matching_taps = (('logits', 'logits'),)

    def __init__(self, alpha=1.0, beta=2.0, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = positive('dkd', 'temperature', temperature)
        self.alpha, self.beta = non_negative('dkd', 'alpha', alpha), non_negative('dkd', 'beta', beta)

    def compute_losses(self, student, teacher, labels):
        return {'loss_dkd': dkd_loss(student['logits'].data, teacher['logits'].data, labels,
                                     self.alpha, self.beta, self.temperature)}
