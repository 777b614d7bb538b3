"""One loss-weight schedule for every method: warm-up, linear ramp, stop at epoch N.

The factor is read from mmengine's message hub (``epoch`` / ``iter``, kept current by the Runner's
``RuntimeInfoHook``), so no distiller keeps its own counter and a resumed run continues the schedule.
Epochs are counted from 1 inside the schedule, as in mdistiller's DKD warm-up (weight 1/20 in epoch 1).
"""
from dataclasses import dataclass
from typing import Optional

from mmengine.logging import MessageHub


@dataclass
class WeightSchedule:
    """Multiplier on a distiller's loss weight.

    ``warmup``: the factor grows as min(t / warmup, 1). ``ramp_start``/``ramp_end``: 0 before
    ``ramp_start``, linear to 1 at ``ramp_end``. ``stop``: 0 from ``stop`` on. ``t`` is the 1-based epoch
    when ``by_epoch`` (default), else the 1-based iteration.
    """
    warmup: int = 0
    ramp_start: Optional[int] = None
    ramp_end: Optional[int] = None
    stop: Optional[int] = None
    by_epoch: bool = True

    def __post_init__(self):
        if self.warmup < 0:
            raise ValueError(f"schedule warmup must be >= 0, got {self.warmup}")
        if (self.ramp_start is None) != (self.ramp_end is None):
            raise ValueError("schedule needs both ramp_start and ramp_end, or neither")
        if self.ramp_start is not None and self.ramp_end <= self.ramp_start:
            raise ValueError(f"schedule ramp_end ({self.ramp_end}) must be after ramp_start ({self.ramp_start})")

    def factor(self, t):
        value = 1.0
        if self.warmup:
            value *= min(t / self.warmup, 1.0)
        if self.ramp_start is not None:
            value *= min(max((t - self.ramp_start) / (self.ramp_end - self.ramp_start), 0.0), 1.0)
        if self.stop is not None and t >= self.stop:
            value = 0.0
        return value

    def current_factor(self):
        hub = MessageHub.get_current_instance()
        key = 'epoch' if self.by_epoch else 'iter'
        return self.factor(hub.get_info(key, 0) + 1)


def build_schedule(cfg):
    if cfg is None or isinstance(cfg, WeightSchedule):
        return cfg
    cfg = dict(cfg)
    unknown = set(cfg) - set(WeightSchedule.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown schedule keys {sorted(unknown)}; accepted: "
                        f"{sorted(WeightSchedule.__dataclass_fields__)}")
    return WeightSchedule(**cfg)
