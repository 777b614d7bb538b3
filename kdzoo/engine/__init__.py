from .amp import CpuBf16OptimWrapper
from .hooks import TeacherEvalHook
from .multi_set_loops import MultiSetTestLoop, MultiSetValLoop
from .optim import DistillOptimWrapperConstructor
from .schedules import WeightSchedule, build_schedule
from .wrappers import DistillDataParallel

__all__ = ['CpuBf16OptimWrapper', 'DistillDataParallel', 'DistillOptimWrapperConstructor', 'MultiSetTestLoop', 'MultiSetValLoop', 'TeacherEvalHook', 'WeightSchedule', 'build_schedule']
