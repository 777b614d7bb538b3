"""``--amp`` on every device: mmengine's AmpOptimWrapper on a GPU, bf16 autocast on a CPU.

mmengine's ``AmpOptimWrapper`` asserts that a GPU (or NPU/MLU/MUSA) is present, so ``--amp`` on a CPU died
with a bare AssertionError. On a CPU, mixed precision means bfloat16 autocast: bf16 has float32's exponent
range, so no loss scaling is needed and the optimiser step is the plain one. It is fast where the CPU has
bf16 instructions (AVX512-BF16 or AMX) and slower than float32 elsewhere, which the log says.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from kdzoo.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CpuBf16OptimWrapper(OptimWrapper):
    """An OptimWrapper whose forward context runs under ``torch.autocast('cpu', dtype=torch.bfloat16)``."""

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield


def cpu_has_bf16_instructions():
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


def enable_amp(cfg):
    """Switch ``cfg.optim_wrapper`` to mixed precision for the device this run trains on; returns a log line."""
    wrapper = cfg.optim_wrapper
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
        return 'mixed precision: AmpOptimWrapper (float16 autocast with dynamic loss scaling) on the GPU'
    wrapper.type = 'kdzoo.CpuBf16OptimWrapper'  # scope prefix: found whatever the default scope is
    for key in ('loss_scale', 'dtype'):  # AmpOptimWrapper's arguments; a bf16 CPU run needs neither
        wrapper.pop(key, None)
    speed = ('this CPU has bf16 instructions' if cpu_has_bf16_instructions() else
             'this CPU has no bf16 instructions, so bf16 is emulated and likely SLOWER than float32: '
             'drop --amp here')
    return f'mixed precision on the CPU: bfloat16 autocast, no loss scaling ({speed})'
