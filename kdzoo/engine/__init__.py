from .hooks import TeacherEvalHook
from .optim import DistillOptimWrapperConstructor
from .schedules import WeightSchedule, build_schedule
from .wrappers import DistillDataParallel

__all__ = ['DistillDataParallel', 'DistillOptimWrapperConstructor', 'TeacherEvalHook', 'WeightSchedule', 'build_schedule']
