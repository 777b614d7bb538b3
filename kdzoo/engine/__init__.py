from .amp import CpuBf16OptimWrapper
from .hooks import TeacherEvalHook
from .multi_set_loops import MultiSetTestLoop, MultiSetValLoop
from .optim import DistillOptimWrapperConstructor
from .runner import KdzooRunner
from .schedules import WeightSchedule, build_schedule
from .teacher_cache import TeacherCache, TeacherCacheHook, configure_teacher_cache
from .wrappers import DistillDataParallel

__all__ = ['CpuBf16OptimWrapper', 'DistillDataParallel', 'DistillOptimWrapperConstructor', 'KdzooRunner', 'MultiSetTestLoop', 'MultiSetValLoop', 'TeacherCache', 'TeacherCacheHook', 'TeacherEvalHook', 'WeightSchedule', 'build_schedule', 'configure_teacher_cache']
