from .schedules import WeightSchedule, build_schedule

__all__ = ['WeightSchedule', 'build_schedule']
