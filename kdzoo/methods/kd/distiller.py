"""KD: Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015).

L_kd = T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)), summed over classes, averaged over the batch.
The T² keeps the soft term's gradient scale independent of T (docs/methods/kd.md). The hard-label CE is
DistillModel's task loss (``task_loss_weight``). Defaults follow the heterogeneous OFA/PAT benchmarks:
T = 1, weight 1; mdistiller's CIFAR-100 setting is T = 4 with loss_weight 0.9 and task_loss_weight 0.1.
"""
import torch.nn.functional as F

from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import positive
from kdzoo.distillers.base import BaseDistiller


def kd_loss(student_logits, teacher_logits, temperature):
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction='batchmean', log_target=True)
    return kl * temperature ** 2


@DISTILLERS.register_module(name=['kd', 'KD'])
class KD(BaseDistiller):
    student_taps = ('logits',)
    teacher_taps = ('logits',)
    matching_taps = (('logits', 'logits'),)

    def __init__(self, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = positive('kd', 'temperature', temperature)

    def compute_losses(self, student, teacher, labels):
        return {'loss_kd': kd_loss(student['logits'].data, teacher['logits'].data, self.temperature)}
