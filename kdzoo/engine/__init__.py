from .hooks import TeacherEvalHook
from .optim import DistillOptimWrapperConstructor
from .schedules import WeightSchedule, build_schedule

__all__ = ['DistillOptimWrapperConstructor', 'TeacherEvalHook', 'WeightSchedule', 'build_schedule']
