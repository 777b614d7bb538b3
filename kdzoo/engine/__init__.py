from .hooks import TeacherEvalHook
from .schedules import WeightSchedule, build_schedule

__all__ = ['TeacherEvalHook', 'WeightSchedule', 'build_schedule']
