"""The distiller interface: declare taps, teachers and adapters, build connectors from probed shapes, return
weighted losses."""
from typing import NamedTuple, Optional

import torch.nn as nn

from kdzoo.engine.schedules import build_schedule
from kdzoo.utils.checks import non_negative

BARE_TEACHER_OUTPUT = 'bare_output'   # the key of the un-prompted teacher output (``reads_bare_teacher``)


class AdapterNeed(NamedTuple):
    """An adapter a distiller works with, declared as data in its ``adapter_needs``.

    Attributes:
        slot: the name the distiller reaches the bound adapter by: ``self.adapter(slot)``.
        provides: the interface (:mod:`kdzoo.adapters.interfaces`) the adapter must implement; any adapter that
            does, kdzoo's own or a user's, serves.
        on: ``'student'`` or one of the distiller's ``teacher_roles``: the model the adapter must target.
        required: False: the slot stays None when the model has no such adapter.
        suggest: the registered type of kdzoo's adapter for this need, named in the error's config fix.
    """
    slot: str
    provides: type
    on: str = 'teacher'
    required: bool = True
    suggest: Optional[str] = None


class BaseDistiller(nn.Module):
    """A distillation method as one module.

    Subclasses set ``student_taps`` / ``teacher_taps`` (lists of tap names) in ``__init__``, create their
    connectors in :meth:`build` from the probed :class:`~kdzoo.taps.FeatureSpec` of those taps, and
    implement :meth:`compute_losses`, which returns unweighted named losses. :meth:`forward` multiplies
    them by ``loss_weight`` and the schedule factor.

    **Teachers.** ``teacher_roles`` names the teachers a method reads (``('teacher',)``: one). Each role is a
    constructor argument naming a teacher of ``DistillModel.teachers`` (``teacher='vit'``); a role left
    out takes the model's one teacher that no other role names (resolved by :meth:`bind`). With one role,
    :meth:`build` and :meth:`compute_losses` receive that teacher's ``{tap: ...}``; with several,
    ``{role: {tap: ...}}``.
    ``teacher_taps`` are read on every role's teacher (or ``{role: taps}``). ``self.roles`` maps each role to
    its teacher's name; ``self.teacher`` is that name for a one-role distiller. A distiller with several roles
    takes one constructor argument per role and hands them to :meth:`name_teachers`.

    **Adapters.** ``adapter_needs`` declares, as :class:`AdapterNeed`, the adapters a method works with by the
    interface they provide (:mod:`kdzoo.adapters.interfaces`), never by class. :meth:`bind` finds them on
    the right model and :meth:`adapter` returns them by slot (plain references: their parameters belong to
    ``DistillModel.adapters``).

    A distiller with its own adversary (CAKD) keeps it in a sub-module named ``discriminator`` and implements
    ``discriminator_loss()``: ``{name: loss}`` on the tensors it detached in its last training forward
    (``{}`` when there are none). Its :meth:`compute_losses` must put no gradient into the discriminator.
    ``DistillOptimWrapperConstructor`` gives the discriminators their own optimiser, and with that
    ``OptimWrapperDict`` ``DistillModel.train_step`` steps them on ``discriminator_loss()`` after the
    ``'model'`` update.

    Args:
        loss_weight: weight of every loss this distiller returns.
        schedule: a :class:`~kdzoo.engine.schedules.WeightSchedule` config (warm-up, ramp, stop).
        teacher: the teacher's name in ``DistillModel.teachers`` for a one-role distiller; may be left out with
            one teacher. A distiller with several roles takes one argument per role and passes them to
            :meth:`name_teachers`.
    """

    teacher_roles = ('teacher',)
    student_taps = ()
    teacher_taps = ()     # taps read on every role's teacher, or {role: taps}
    matching_taps = ()    # (student tap, teacher tap) pairs that must have one shape, e.g. both models' logits
    adapter_needs = ()    # AdapterNeed, one per adapter the method works with
    uses_inputs = False   # True: compute_losses also receives ``inputs=`` (the preprocessed batch)
    # True: the teachers' taps also hold BARE_TEACHER_OUTPUT, their output from a pass with their adapters'
    # prompts off (FOFA's plain teacher, URFM's prompt anchor). DistillModel runs that pass with the others.
    reads_bare_teacher = False

    def __init__(self, loss_weight=1.0, schedule=None, teacher=None):
        super().__init__()
        self.loss_weight = non_negative(type(self).__name__, 'loss_weight', loss_weight)
        self.schedule = build_schedule(schedule)
        self.roles = dict.fromkeys(self.teacher_roles)
        if teacher is not None:
            if not self.single_role:
                raise TypeError(f"{type(self).__name__} reads several teachers; name them by role "
                                f"({', '.join(f'{role}=' for role in self.teacher_roles)}), not with teacher=")
            self.teacher = teacher
        self._adapters = None   # {slot: adapter or None} once bound: plain references, not submodules

    def name_teachers(self, **names):
        """Set the teacher names of several roles (``conv_teacher='regnet', ...``); None leaves one out."""
        unknown = sorted(set(names) - set(self.teacher_roles))
        if unknown:
            raise TypeError(f"{type(self).__name__}: {unknown[0]!r} is not one of its teacher roles "
                            f"{list(self.teacher_roles)}")
        self.roles.update(names)

    # ------------------------------------------------------------------ teachers
    @property
    def single_role(self):
        return len(self.teacher_roles) == 1

    @property
    def teacher(self):
        """The teacher's name of a one-role distiller (None before :meth:`bind` when it was left out)."""
        if not self.single_role:
            raise RuntimeError(f"{type(self).__name__} reads several teachers {self.roles}; use .roles "
                               "(role -> teacher name) or .teacher_names()")
        return self.roles[self.teacher_roles[0]]

    @teacher.setter
    def teacher(self, name):
        if not self.single_role:
            raise RuntimeError(f"{type(self).__name__} reads several teachers; set them by role in .roles")
        self.roles[self.teacher_roles[0]] = name

    def teacher_names(self):
        """The distinct teachers this distiller reads, in role order."""
        return list(dict.fromkeys(self.roles.values()))

    def by_role(self, per_teacher):
        """What :meth:`build` / :meth:`compute_losses` receive from ``{teacher name: x}``: x of the one
        teacher, or ``{role: x}`` with several roles (``{}`` for a teacher not in ``per_teacher``)."""
        if self.single_role:
            return per_teacher.get(self.teacher, {})
        return {role: per_teacher.get(name, {}) for role, name in self.roles.items()}

    def taps_of(self, role):
        taps = self.teacher_taps.get(role, ()) if isinstance(self.teacher_taps, dict) else self.teacher_taps
        return list(taps)

    # ------------------------------------------------------------------ binding
    def bind(self, teacher_names, adapters=(), models=None):
        """Pick this distiller's teachers among the model's and find the adapters it needs (called once by
        DistillModel, after the adapters are attached).

        ``models`` (``{'student': ..., teacher: ...}``) is there for methods that inspect a model; keep
        references, never re-register them.
        """
        self.roles = resolve_teacher_roles(type(self).__name__, self.roles, list(teacher_names))
        self._adapters = {need.slot: resolve_adapter_need(self, need, adapters) for need in self.adapter_needs}

    @property
    def is_bound(self):
        return self._adapters is not None

    def adapter(self, slot):
        """The adapter bound to ``slot`` (an :class:`AdapterNeed`'s), or None for an optional one not found."""
        if self._adapters is None:
            raise RuntimeError(f"{type(self).__name__}: not bound to a model yet (DistillModel calls bind)")
        if slot not in self._adapters:
            raise KeyError(f"{type(self).__name__} declares no adapter slot {slot!r}; its slots are "
                           f"{list(self._adapters)}")
        return self._adapters[slot]

    def model_of(self, on):
        """The model name an :class:`AdapterNeed`'s ``on`` (``'student'`` or a role) refers to."""
        if on == 'student':
            return 'student'
        if on not in self.roles:
            raise ValueError(f"{type(self).__name__}: an adapter need is on {on!r}, which is neither 'student' "
                             f"nor one of its teacher roles {list(self.teacher_roles)}")
        return self.roles[on]

    # ------------------------------------------------------------------ taps and build
    def required_taps(self):
        """``{'student': taps, teacher_name: taps}`` this distiller reads."""
        taps = {'student': list(self.student_taps)}
        for role, name in self.roles.items():
            taps.setdefault(name, [])
            taps[name] += [tap for tap in self.taps_of(role) if tap not in taps[name]]
        return taps

    def check_matching_taps(self, specs):
        """Fail at build time when a pair in ``matching_taps`` differs in shape for any teacher read.

        ``specs``: ``{model name: {tap: FeatureSpec}}`` as probed by DistillModel, before :meth:`build`.
        """
        for model_name in self.teacher_names():
            for student_tap, teacher_tap in self.matching_taps:
                require_same_shape(type(self).__name__, specs['student'][student_tap], model_name,
                                   specs[model_name][teacher_tap])

    def build(self, student_specs, teacher_specs):
        """Create connectors. ``*_specs`` map tap names to their probed FeatureSpec (``teacher_specs``: per
        role with several roles, see :meth:`by_role`)."""

    # ------------------------------------------------------------------ losses
    def current_weight(self):
        return self.loss_weight * (self.schedule.current_factor() if self.schedule else 1.0)

    def forward(self, student, teachers, labels, inputs=None):
        """``student``: {tap: Feature}; ``teachers``: {teacher: {tap: Feature}}; ``labels``: (B,) ints."""
        extra = {'inputs': inputs} if self.uses_inputs else {}
        losses = self.compute_losses(student, self.by_role(teachers), labels, **extra)
        weight = self.current_weight()
        return {name: loss * weight for name, loss in losses.items()}

    def compute_losses(self, student, teacher, labels):
        raise NotImplementedError(f"{type(self).__name__} must implement compute_losses (abstract)")

    def extra_repr(self):
        teachers = ', '.join(f"{role}={name!r}" for role, name in self.roles.items())
        return f"{teachers}, loss_weight={self.loss_weight}"


def resolve_teacher_roles(method, roles, teacher_names):
    """``{role: teacher name}`` with every role checked against the model's teachers; a role left out takes
    the one teacher no other role names."""
    for role, name in roles.items():
        if name is not None and name not in teacher_names:
            raise KeyError(f"{method}: {role}={name!r} is not among the model's teachers {teacher_names}; set "
                           f"{role}= to one of them")
    unnamed = [role for role, name in roles.items() if name is None]
    if not unnamed:
        return dict(roles)
    left = [name for name in teacher_names if name not in roles.values()]
    if len(unnamed) != 1 or len(left) != 1:
        raise ValueError(f"{method}: set {'= and '.join(unnamed)}= to one of {left or teacher_names}")
    return {role: name if name is not None else left[0] for role, name in roles.items()}


def resolve_adapter_need(distiller, need, adapters):
    """The one adapter on ``need.on``'s model that provides ``need.provides`` (None if optional and absent);
    zero or several give one error naming the distiller, the need, the model, what was found and the fix."""
    method, model = type(distiller).__name__, distiller.model_of(need.on)
    on_model = [adapter for adapter in adapters if adapter.target == model]
    found = [adapter for adapter in on_model if isinstance(adapter, need.provides)]
    if len(found) == 1 or (not found and not need.required):
        return found[0] if found else None
    interface = need.provides.__name__
    where = 'the student' if model == 'student' else f"teacher {model!r}"
    if found:
        problem = (f"found {len(found)}: {[type(a).__name__ for a in found]}; keep exactly one of them in "
                   "adapters=[...]")
    else:
        fix = dict(type=need.suggest or f'<your adapter providing {interface}>')
        if model != 'student':
            fix['target'] = model
        fix = ', '.join(f'{key}={value!r}' for key, value in fix.items())
        problem = (f"found none (adapters on {where}: {[type(a).__name__ for a in on_model]}); add "
                   f"adapters=[dict({fix})] to the model")
    raise ValueError(f"{method}: needs one adapter providing {interface} (slot {need.slot!r}) on {where}; "
                     f"{problem}")


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
