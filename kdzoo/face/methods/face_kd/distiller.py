"""Face KD: Hinton's KD on the identity logits of two face recognisers' margin heads.

A face recogniser's forward returns an embedding, not logits: its identity classifier is the margin head
(ArcFace, CosFace, ...), used only by the training loss. KD on the embedding itself (a softmax over 512
embedding dimensions) has no meaning, so for face models the classic KD baseline compares the two models'
*identity* distributions: each model's L2-normalised embedding against its own head's L2-normalised class
centres, scaled by the head's ``s`` and without margin (the margin belongs to the training target, not to
the prediction):

    z = s · cos(e, W_c) for every identity c,    L = T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)).

The teacher must therefore have been trained on the same identities (same class count and order) and its
checkpoint must hold its head (a kdzoo-trained teacher does; an arcface_torch ``backbone.pth`` does not).
The student's centres receive this gradient too. Under torch.distributed a sharded Partial FC head holds only
part of the centres; this distiller refuses it (use ``ArcFaceHead`` or Partial FC on one process).
"""
from kdzoo.face.models.heads import PartialFC, normalized_cosine
from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import positive
from kdzoo.distillers.base import BaseDistiller
from kdzoo.methods.kd.distiller import kd_loss


def margin_head(model, role):
    head = getattr(model, 'head', None)
    if head is None or not hasattr(head, 'weight') or not hasattr(head, 'margin'):
        raise ValueError(f"face_kd: the {role} needs a margin head (a FaceRecognizer built with head=dict("
                         f"type='ArcFaceHead', num_classes=...)), got {type(model).__name__} with head "
                         f"{type(head).__name__}")
    if isinstance(head, PartialFC) and head.world_size > 1:
        raise ValueError(f"face_kd: the {role}'s PartialFC head is sharded over {head.world_size} processes, "
                         "so no process holds all identity logits; use ArcFaceHead for face KD")
    return head


@DISTILLERS.register_module(name=['face_kd', 'FaceKD'])
class FaceKD(BaseDistiller):
    """KD on margin-head identity logits (module docstring).

    Args:
        temperature: T.
        scale: the logit scale s of both models; None takes each head's own ``s``.
        **kwargs: :class:`BaseDistiller` arguments (``loss_weight``, ``schedule``, ``teacher``).
    """
    student_taps = ('logits',)   # a FaceRecognizer's output: the raw embedding
    teacher_taps = ('logits',)

    def __init__(self, temperature=1.0, scale=None, **kwargs):
        super().__init__(**kwargs)
        self.temperature = positive('face_kd', 'temperature', temperature)
        self.scale = scale
        self._heads = None

    def bind(self, teacher_names, adapters=(), models=None):
        super().bind(teacher_names, adapters, models)
        if models is None:
            raise ValueError('face_kd reads the models\' margin heads; bind it with models=')
        student, teacher = margin_head(models['student'], 'student'), margin_head(models[self.teacher], 'teacher')
        if student.num_classes != teacher.num_classes:
            raise ValueError(f"face_kd: the student's head has {student.num_classes} identities and teacher "
                             f"{self.teacher!r}'s {teacher.num_classes}; KD needs a teacher trained on the "
                             "same identities")
        # A plain tuple: the heads stay registered in their models only (no duplicate parameters here).
        self._heads = (student, teacher)

    def identity_logits(self, embedding, head):
        scale = self.scale if self.scale is not None else head.margin.s
        return scale * normalized_cosine(embedding, head.weight)

    def compute_losses(self, student, teacher, labels):
        student_head, teacher_head = self._heads
        student_logits = self.identity_logits(student['logits'].data, student_head)
        teacher_logits = self.identity_logits(teacher['logits'].data, teacher_head).detach()
        return {'loss_kd': kd_loss(student_logits, teacher_logits, self.temperature)}

    def extra_repr(self):
        return f"{super().extra_repr()}, temperature={self.temperature}, scale={self.scale}"
