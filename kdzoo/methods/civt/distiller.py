"""CivT / Co-advise: Ren et al., "Co-advise: Cross Inductive Bias Distillation", CVPR 2022
(docs/methods/civt.md): the two-teacher loss of Eq. 5.

    L = λ0·CE(z_cls, y) + λ1·τ1²·KL(σ(z_t1/τ1) ‖ σ(z_conv/τ1)) + λ2·τ2²·KL(σ(z_t2/τ2) ‖ σ(z_inv/τ2))

z_t1 are the CNN teacher's logits (``conv_teacher``), z_t2 the involution teacher's (``inv_teacher``);
z_cls, z_conv and z_inv are the student's CLS, CONV and INV heads. The student is a class-token ViT with a
:class:`~kdzoo.methods.CivTTokens` adapter, which adds the CONV/INV tokens and heads; its output stays the
CLS logits, so the λ0 term is DistillModel's task loss (``task_loss_weight``, with ``label_smoothing=0.1``
in the code's recipe when mixup is off). This distiller returns the two KD terms, ``loss_civt_conv`` and
``loss_civt_inv``, each also scaled by ``loss_weight`` and the schedule.

Eq. 5 writes one z_s in every term and the KL arguments reversed; as §4.6 of the paper and the code make
clear (docs/methods/civt.md), each token learns from its own teacher through its own head, with the standard
teacher-to-student KL (student log-probabilities, teacher probabilities, summed over classes, averaged
over the batch). Defaults λ1 = λ2 = 1, τ1 = τ2 = 1 (paper and code).

The distiller reads the ``logits`` of both teachers and the student's final-norm tokens (the tap
``CivTTokens.final_norm_path``), to which it applies the adapter's heads; it has no parameters of its own.
"""
from kdzoo.methods.civt.adapter import TOKENS, CivTTokens, find_class_token_vit
from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import non_negative, positive
from kdzoo.distillers.base import BaseDistiller
from kdzoo.methods.kd.distiller import kd_loss


def civt_distillation_losses(token_logits, teacher_logits, weights, temperatures):
    """Eq. 5's distillation terms, one per token: ``{'loss_civt_<token>': λ·τ²·KL(teacher ‖ token head)}``.

    Every argument maps ``'conv'`` and ``'inv'`` to that token's student logits, its teacher's logits,
    its weight λ and its temperature τ.
    """
    losses = {}
    for token in TOKENS:
        student, teacher = token_logits[token], teacher_logits[token]
        if student.shape != teacher.shape:
            raise ValueError(f"civt: the {token.upper()} head gives logits of shape {tuple(student.shape)} but "
                             f"its teacher's logits are {tuple(teacher.shape)}; the student and both "
                             "teachers must classify the same classes")
        losses[f'loss_civt_{token}'] = weights[token] * kd_loss(student, teacher, temperatures[token])
    return losses


def find_tokens_adapter(adapters):
    found = [adapter for adapter in adapters if isinstance(adapter, CivTTokens)]
    if not found:
        raise ValueError("civt: the student has no CivT tokens adapter, so it has no CONV/INV tokens or heads "
                         "to distil into; add adapters=[dict(type='civt_tokens')] to the model")
    if len(found) > 1:
        raise ValueError(f"civt: the student has {len(found)} civt_tokens adapters; it needs exactly one")
    return found[0]


@DISTILLERS.register_module(name=['civt', 'CivT'])
class CivT(BaseDistiller):
    """Eq. 5 of Co-advise with two teachers (see the module docstring).

    Args:
        conv_teacher: name of the CNN teacher in ``DistillModel.teachers``; supervises the CONV token.
        inv_teacher: name of the involution teacher; supervises the INV token.
        conv_weight, inv_weight: λ1, λ2.
        conv_temperature, inv_temperature: τ1, τ2.
        loss_weight, schedule: as in :class:`~kdzoo.distillers.BaseDistiller`, applied to both terms.
    """

    teacher_taps = ('logits',)

    def __init__(self, conv_teacher='regnet', inv_teacher='rednet', conv_weight=1.0, inv_weight=1.0,
                 conv_temperature=1.0, inv_temperature=1.0, loss_weight=1.0, schedule=None):
        # ``teacher`` (the base class's single teacher) is the CNN teacher: DistillModel hands its probed
        # specs to build(), which needs none.
        super().__init__(loss_weight=loss_weight, schedule=schedule, teacher=conv_teacher)
        self.teacher_names = {'conv': conv_teacher, 'inv': inv_teacher}
        self.weights = {'conv': non_negative('civt', 'conv_weight', conv_weight),
                        'inv': non_negative('civt', 'inv_weight', inv_weight)}
        self.temperatures = {'conv': positive('civt', 'conv_temperature', conv_temperature),
                             'inv': positive('civt', 'inv_temperature', inv_temperature)}
        self._bound_adapter = ()       # (CivTTokens,) once bound: a reference, its parameters are the model's

    def bind(self, teacher_names, adapters=(), models=None):
        """Check both teachers exist, the student is a class-token ViT, and find its civt_tokens adapter."""
        teacher_names = list(teacher_names)
        for token, name in self.teacher_names.items():
            if name not in teacher_names:
                raise KeyError(f"civt: {token}_teacher={name!r} is not among the model's teachers {teacher_names}")
        if models is not None:
            find_class_token_vit(models['student'])
        adapter = find_tokens_adapter(adapters)
        self._bound_adapter = (adapter,)
        self.student_taps = (adapter.final_norm_path,)

    @property
    def tokens_adapter(self):
        if not self._bound_adapter:
            raise RuntimeError("civt: not bound to a model yet (DistillModel calls bind)")
        return self._bound_adapter[0]

    def check_matching_taps(self, specs):
        """Each teacher's logits must have the class count of the token heads (the student's)."""
        classes = self.tokens_adapter.head_conv.out_features
        for token, name in self.teacher_names.items():
            teacher_classes = specs[name]['logits'].shape[-1]
            if teacher_classes != classes:
                raise ValueError(f"civt: the student has {classes} classes and {token}_teacher {name!r} "
                                 f"{teacher_classes}; each teacher must predict the student's classes "
                                 "(set the same num_classes, or use teachers trained on the student's classes)")

    def required_taps(self):
        taps = {'student': list(self.student_taps)}
        for name in self.teacher_names.values():
            taps[name] = list(self.teacher_taps)
        return taps

    def forward(self, student, teachers, labels, inputs=None):
        """Like the base class, but ``compute_losses`` receives every teacher's taps, not one teacher's."""
        weight = self.current_weight()
        return {name: loss * weight for name, loss in self.compute_losses(student, teachers, labels).items()}

    def compute_losses(self, student, teachers, labels):
        """``student``: {tap: Feature}; ``teachers``: {teacher name: {tap: Feature}}."""
        final_tokens = student[self.student_taps[0]].data
        token_logits = self.tokens_adapter.token_logits(final_tokens)
        teacher_logits = {token: teachers[name]['logits'].data for token, name in self.teacher_names.items()}
        return civt_distillation_losses(token_logits, teacher_logits, self.weights, self.temperatures)

    def extra_repr(self):
        return (f"conv_teacher={self.teacher_names['conv']!r}, inv_teacher={self.teacher_names['inv']!r}, "
                f"weights={self.weights}, temperatures={self.temperatures}, loss_weight={self.loss_weight}")
