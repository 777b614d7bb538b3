"""Fixes for mmengine 0.10.x on current torch. Imported by ``kdzoo/__init__.py``; each fix is tested.

1. Resume and ``load_from`` (mmengine issue #1569 and torch >= 2.6's ``weights_only=True`` default):
   mmengine calls ``torch.load`` on local files without ``weights_only``, and its checkpoints pickle a
   ``HistoryBuffer``, so torch >= 2.6 refuses them. kdzoo re-registers the local-file loader with
   ``weights_only=False``. This loader is reached only by the Runner's own checkpoints (``resume``,
   ``load_from``); weights a user hands kdzoo go through :func:`kdzoo.models.weights.load_weights`, which
   uses ``weights_only=True`` or safetensors.
2. Distributed runs on CPU: ``mmengine.dist.utils._init_dist_pytorch`` calls ``torch.cuda.set_device``
   unconditionally. :func:`init_cpu_distributed` creates the gloo process group first, so mmengine finds
   one and skips its own init; DDP on CPU must then be built without ``device_ids`` (see
   ``kdzoo.tools_support.ddp_wrapper_cfg``).
"""
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_runner_checkpoint(filename, map_location=None):
    """Local-file loader for the Runner's own checkpoints (see the module docstring, fix 1)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def needs_cpu_distributed(launcher):
    return launcher != 'none' and not torch.cuda.is_available()


def init_cpu_distributed(launcher, timeout_s=1800):
    """Create the gloo process group for a CPU-only distributed run (fix 2). No-op when not needed."""
    if not needs_cpu_distributed(launcher) or torch_dist.is_initialized():
        return
    if launcher == 'slurm':
        _export_slurm_env_for_torch()
    import datetime
    torch_dist.init_process_group('gloo', timeout=datetime.timedelta(seconds=timeout_s))


def _export_slurm_env_for_torch():
    """``init_process_group`` with the env:// method needs these; slurm provides their equivalents."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        import subprocess
        nodes = os.environ['SLURM_NODELIST']
        first = subprocess.getoutput(f'scontrol show hostname {nodes} | head -n1')
        os.environ['MASTER_ADDR'] = first
