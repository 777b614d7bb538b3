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

The distiller declares two teacher roles, ``conv_teacher`` and ``inv_teacher`` (BaseDistiller's multi-teacher
support: it receives ``{role: {tap: Feature}}``), reads both teachers' ``logits`` and the student's tokens at
the tap its adapter names, to which it applies the adapter's heads; it has no parameters of its own. The
adapter is any student adapter providing :class:`~kdzoo.adapters.interfaces.TokenHeads` with a ``'conv'`` and
an ``'inv'`` head (kdzoo's is :class:`~kdzoo.methods.CivTTokens`), bound as ``self.adapter('tokens')``.
"""
from kdzoo.adapters.interfaces import TokenHeads
from kdzoo.registry import DISTILLERS
from kdzoo.utils.checks import non_negative, positive
from kdzoo.distillers.base import AdapterNeed, BaseDistiller
from kdzoo.methods.kd.distiller import kd_loss

TOKEN_OF_ROLE = {'conv_teacher': 'conv', 'inv_teacher': 'inv'}   # each teacher supervises its own token


def civt_distillation_losses(token_logits, teacher_logits, weights, temperatures):
    """Eq. 5's distillation terms, one per token: ``{'loss_civt_<token>': λ·τ²·KL(teacher ‖ token head)}``.

    Every argument maps ``'conv'`` and ``'inv'`` to that token's student logits, its teacher's logits,
    its weight λ and its temperature τ.
    """
    losses = {}
    for token in TOKEN_OF_ROLE.values():
        student, teacher = token_logits[token], teacher_logits[token]
        if student.shape != teacher.shape:
            raise ValueError(f"civt: the {token.upper()} head gives logits of shape {tuple(student.shape)} but "
                             f"its teacher's logits are {tuple(teacher.shape)}; the student and both "
                             "teachers must classify the same classes")
        losses[f'loss_civt_{token}'] = weights[token] * kd_loss(student, teacher, temperatures[token])
    return losses


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

    teacher_roles = tuple(TOKEN_OF_ROLE)
    teacher_taps = ('logits',)
    adapter_needs = (AdapterNeed('tokens', TokenHeads, on='student', suggest='civt_tokens'),)

    def __init__(self, conv_teacher='regnet', inv_teacher='rednet', conv_weight=1.0, inv_weight=1.0,
                 conv_temperature=1.0, inv_temperature=1.0, loss_weight=1.0, schedule=None):
        super().__init__(loss_weight=loss_weight, schedule=schedule)
        self.name_teachers(conv_teacher=conv_teacher, inv_teacher=inv_teacher)
        self.weights = {'conv': non_negative('civt', 'conv_weight', conv_weight),
                        'inv': non_negative('civt', 'inv_weight', inv_weight)}
        self.temperatures = {'conv': positive('civt', 'conv_temperature', conv_temperature),
                             'inv': positive('civt', 'inv_temperature', inv_temperature)}

    @property
    def tokens_adapter(self):
        """The student's :class:`~kdzoo.adapters.interfaces.TokenHeads` adapter (CivTTokens)."""
        return self.adapter('tokens')

    @property
    def student_taps(self):
        return (self.tokens_adapter.tokens_tap,)

    def build(self, student_specs, teacher_specs):
        """Each teacher's logits must have the class count of the token heads (the student's)."""
        classes = self.tokens_adapter.num_classes
        for role, specs in teacher_specs.items():
            teacher_classes = specs['logits'].shape[-1]
            if teacher_classes != classes:
                raise ValueError(f"civt: the student has {classes} classes and {role} {self.roles[role]!r} "
                                 f"{teacher_classes}; each teacher must predict the student's classes "
                                 "(set the same num_classes, or use teachers trained on the student's classes)")

    def compute_losses(self, student, teachers, labels):
        """``student``: {tap: Feature}; ``teachers``: {role: {tap: Feature}}."""
        token_logits = self.tokens_adapter.token_logits(student[self.student_taps[0]].data)
        missing = [token for token in TOKEN_OF_ROLE.values() if token not in token_logits]
        if missing:
            raise KeyError(f"civt: the tokens adapter {type(self.tokens_adapter).__name__} gives heads "
                           f"{list(token_logits)}, CivT needs {list(TOKEN_OF_ROLE.values())}")
        teacher_logits = {token: teachers[role]['logits'].data for role, token in TOKEN_OF_ROLE.items()}
        return civt_distillation_losses(token_logits, teacher_logits, self.weights, self.temperatures)

    def extra_repr(self):
        return f"{super().extra_repr()}, weights={self.weights}, temperatures={self.temperatures}"
