"""The distiller interface: declare taps, build connectors from probed shapes, return weighted losses."""
import torch.nn as nn

from kdzoo.engine.schedules import build_schedule
from kdzoo.utils.checks import non_negative

BARE_TEACHER_OUTPUT = 'bare_output'   # the key of the un-prompted teacher output (``reads_bare_teacher``)


class BaseDistiller(nn.Module):
    """A distillation method as one module.

    Subclasses set ``student_taps`` / ``teacher_taps`` (lists of tap names) in ``__init__``, create their
    connectors in :meth:`build` from the probed :class:`~kdzoo.taps.FeatureSpec` of those taps, and
    implement :meth:`compute_losses`, which returns unweighted named losses. :meth:`forward` multiplies
    them by ``loss_weight`` and the schedule factor.

    A distiller with its own adversary (CAKD) keeps it in a sub-module named ``discriminator`` and implements
    ``discriminator_loss()``: ``{name: loss}`` on the tensors it detached in its last training forward
    (``{}`` when there are none). Its :meth:`compute_losses` must put no gradient into the discriminator.
    ``DistillOptimWrapperConstructor`` gives the discriminators their own optimiser, and with that
    ``OptimWrapperDict`` ``DistillModel.train_step`` steps them on ``discriminator_loss()`` after the
    ``'model'`` update.

    Args:
        loss_weight: weight of every loss this distiller returns.
        schedule: a :class:`~kdzoo.engine.schedules.WeightSchedule` config (warm-up, ramp, stop).
        teacher: name of the teacher in ``DistillModel.teachers``; may be left out with one teacher.
    """

    student_taps = ()
    teacher_taps = ()
    matching_taps = ()    # (student tap, teacher tap) pairs that must have one shape, e.g. both models' logits
    uses_inputs = False   # True: compute_losses also receives ``inputs=`` (the preprocessed batch)
    # True: the teacher's taps also hold BARE_TEACHER_OUTPUT, its output from a pass with its adapters'
    # prompts off (FOFA's plain teacher, URFM's prompt anchor). DistillModel runs that pass with the others.
    reads_bare_teacher = False

    def __init__(self, loss_weight=1.0, schedule=None, teacher=None):
        super().__init__()
        self.loss_weight = non_negative(type(self).__name__, 'loss_weight', loss_weight)
        self.schedule = build_schedule(schedule)
        self.teacher = teacher

    def bind(self, teacher_names, adapters=(), models=None):
        """Pick this distiller's teacher among the model's teachers (called once by DistillModel).

        ``adapters`` (the model's adapters) and ``models`` (``{'student': ..., teacher: ...}``) are there
        for methods that work with them, e.g. feedback prompts; keep references, never re-register them.
        """
        teacher_names = list(teacher_names)
        if self.teacher is None:
            if len(teacher_names) != 1:
                raise ValueError(f"{type(self).__name__}: set teacher= to one of {teacher_names}")
            self.teacher = teacher_names[0]
        elif self.teacher not in teacher_names:
            raise KeyError(f"{type(self).__name__}: teacher {self.teacher!r} is not among the model's "
                           f"teachers {teacher_names}")

    def required_taps(self):
        """``{'student': taps, teacher_name: taps}`` this distiller reads."""
        return {'student': list(self.student_taps), self.teacher: list(self.teacher_taps)}

    def check_matching_taps(self, specs):
        """Fail at build time when a pair in ``matching_taps`` differs in shape for any teacher read.

        ``specs``: ``{model name: {tap: FeatureSpec}}`` as probed by DistillModel, before :meth:`build`.
        """
        for model_name in self.required_taps():
            if model_name == 'student':
                continue
            for student_tap, teacher_tap in self.matching_taps:
                require_same_shape(type(self).__name__, specs['student'][student_tap], model_name,
                                   specs[model_name][teacher_tap])

    def build(self, student_specs, teacher_specs):
        """Create connectors. ``*_specs`` map tap names to their probed FeatureSpec."""

    def current_weight(self):
        return self.loss_weight * (self.schedule.current_factor() if self.schedule else 1.0)

    def forward(self, student, teachers, labels, inputs=None):
        """``student``: {tap: Feature}; ``teachers``: {teacher: {tap: Feature}}; ``labels``: (B,) ints."""
        extra = {'inputs': inputs} if self.uses_inputs else {}
        losses = self.compute_losses(student, teachers[self.teacher], labels, **extra)
        weight = self.current_weight()
        return {name: loss * weight for name, loss in losses.items()}

    def compute_losses(self, student, teacher, labels):
        raise NotImplementedError(f"{type(self).__name__} must implement compute_losses (abstract)")

    def extra_repr(self):
        return f"teacher={self.teacher!r}, loss_weight={self.loss_weight}"


def shape_error(method, what, student_spec, teacher_spec):
    """The error every distiller raises when a pair of taps does not fit: both shapes, both tap names."""
    return ValueError(f"{method}: {what}. Student tap {student_spec.describe()}; "
                      f"teacher tap {teacher_spec.describe()}")


def require_same_shape(method, student_spec, teacher_name, teacher_spec):
    """Raise when a student tap and a teacher tap that must match do not; logits are named as class counts."""
    if student_spec.shape == teacher_spec.shape:
        return
    if student_spec.name == teacher_spec.name == 'logits':
        raise ValueError(f"{method}: the student has {student_spec.shape[-1]} classes and teacher {teacher_name!r} "
                         f"{teacher_spec.shape[-1]}; logit distillation needs both to predict the same classes "
                         "(set the same num_classes, or use a teacher trained on the student's classes)")
    raise shape_error(method, f"the student's and teacher {teacher_name!r}'s taps must have the same shape",
                      student_spec, teacher_spec)
