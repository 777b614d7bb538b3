"""Fixes for mmengine 0.10.x on current torch. Imported by ``kdzoo/__init__.py``; each fix is tested.

1. Resume and ``load_from`` (mmengine issue #1569 and torch >= 2.6's ``weights_only=True`` default):
   mmengine calls ``torch.load`` on local files without ``weights_only``, and its checkpoints pickle a
   ``HistoryBuffer`` and numpy arrays, so torch >= 2.6 refuses them. kdzoo re-registers the local-file loader
   as :func:`kdzoo.models.weights.load_checkpoint_file`: still ``weights_only=True``, with an allow-list of
   exactly those globals scoped to each load. A file naming anything else is refused, as before the import.
2. Distributed runs on CPU: ``mmengine.dist.utils._init_dist_pytorch`` calls ``torch.cuda.set_device``
   unconditionally. :func:`init_cpu_distributed` creates the gloo process group first, so mmengine finds
   one and skips its own init; DDP on CPU must then be built without ``device_ids`` (see
   ``kdzoo.tools_support.ddp_wrapper_cfg``).
3. Package-scoped config bases: mmengine's own ``pkg::path`` lookup (``Config._get_cfg_path``) asserts the
   package is one of OpenMMLab's and imports ``pkg_resources``, which current setuptools no longer ships.
   kdzoo wraps ``Config._get_cfg_path`` so that ``_base_ = 'kdzoo::quickstart/kd.py'`` is
   ``<kdzoo package>/configs/quickstart/kd.py``, from any folder, loaded as a plain (unscoped) base, exactly as
   the same file given by a relative path; every other base is left to mmengine.
"""
import os
import re

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

KDZOO_PREFIX = 'kdzoo::'
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename, map_location=None):
    """Local-file loader for the Runner's own checkpoints (see the module docstring, fix 1); named as
    mmengine's, whose log line reads "Loads checkpoint by local backend"."""
    from kdzoo.models.weights import load_checkpoint_file
    return load_checkpoint_file(filename, map_location=map_location)


def kdzoo_config_path(cfg_path):
    """``'kdzoo::quickstart/kd.py'`` -> that file in kdzoo's configs (fix 3); a missing one names where it looked."""
    path = os.path.join(CONFIGS_DIR, cfg_path[len(KDZOO_PREFIX):])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{cfg_path!r}: kdzoo has no such config (looked for {path}). Name a file under "
                                f"{CONFIGS_DIR} relative to that folder, e.g. 'kdzoo::quickstart/kd.py'")
    return path


def _get_cfg_path_with_kdzoo(cfg_path, filename):
    if cfg_path.startswith(KDZOO_PREFIX):
        return kdzoo_config_path(cfg_path), None  # scope None: no _scope_ keys, as for a relative base
    return _mmengine_get_cfg_path(cfg_path, filename)


_mmengine_get_cfg_path = getattr(Config._get_cfg_path, 'mmengine_original', Config._get_cfg_path)
_get_cfg_path_with_kdzoo.mmengine_original = _mmengine_get_cfg_path
Config._get_cfg_path = staticmethod(_get_cfg_path_with_kdzoo)


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
    os.environ.setdefault('RANK', _slurm_variable('SLURM_PROCID'))
    os.environ.setdefault('WORLD_SIZE', _slurm_variable('SLURM_NTASKS'))
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = first_slurm_host(_slurm_variable('SLURM_NODELIST'))


def _slurm_variable(name):
    value = os.environ.get(name, '').strip()
    if not value:
        raise RuntimeError(f'--launcher slurm: the environment variable {name} is not set; start the job with '
                           'srun (or use --launcher pytorch with torchrun)')
    return value


def first_slurm_host(nodelist, variable='SLURM_NODELIST'):
    """The first host of a slurm host list (``node[1-3,5]``, ``a[01-03]b,c7``), expanded without a shell."""
    return next(iter_slurm_hosts(nodelist, variable))


def expand_slurm_hostlist(nodelist, variable='SLURM_NODELIST'):
    """Every host of a slurm host list, in order; zero padding is kept (``n[08-10]`` is n08, n09, n10)."""
    return list(iter_slurm_hosts(nodelist, variable))


def iter_slurm_hosts(nodelist, variable='SLURM_NODELIST'):
    """The hosts of a slurm host list, one at a time; the whole list is checked before the first is given.

    A malformed list raises ValueError naming ``variable``."""
    items = [_parse_item(item, nodelist, variable) for item in _top_level_items(nodelist, variable)]
    for texts, ranges in items:
        yield from _hosts(texts, ranges)


def _hosts(texts, ranges):
    """Lazily, so a huge range costs nothing when only the first host is wanted."""
    if not ranges:
        yield texts[0]
        return
    for number in _numbers(ranges[0]):
        for rest in _hosts(texts[1:], ranges[1:]):
            yield texts[0] + number + rest


def _top_level_items(nodelist, variable):
    """Split at the commas outside brackets: ``a[1,2],b`` is ``a[1,2]`` and ``b``."""
    items, depth, start = [], 0, 0
    for position, char in enumerate(nodelist):
        depth += {'[': 1, ']': -1}.get(char, 0)
        if depth not in (0, 1):
            raise ValueError(f'{variable}={nodelist!r}: unbalanced or nested brackets')
        if char == ',' and depth == 0:
            items.append(nodelist[start:position])
            start = position + 1
    if depth:
        raise ValueError(f'{variable}={nodelist!r}: unbalanced brackets')
    return items + [nodelist[start:]]


_HOST_TEXT = re.compile(r'[A-Za-z0-9._-]*')
_RANGE = re.compile(r'(\d+)(?:-(\d+))?')


def _parse_item(item, nodelist, variable):
    """``a[01-03]b`` -> (['a', 'b'], [[(1, 3, 2)]]): the texts between brackets and each bracket's ranges."""
    parts = re.split(r'\[([^\]]*)\]', item)
    texts, specs = parts[0::2], parts[1::2]
    if not item or any(not _HOST_TEXT.fullmatch(text) for text in texts):
        raise ValueError(f'{variable}={nodelist!r}: {item!r} is not a host name or host range')
    return texts, [_parse_ranges(spec, nodelist, variable) for spec in specs]


def _parse_ranges(spec, nodelist, variable):
    ranges = []
    for piece in spec.split(','):
        match = _RANGE.fullmatch(piece.strip())
        if not match:
            raise ValueError(f'{variable}={nodelist!r}: [{spec}] must hold numbers and ranges such as 1-3,5')
        low, high = match.group(1), match.group(2) or match.group(1)
        if int(high) < int(low):
            raise ValueError(f'{variable}={nodelist!r}: range {piece} runs backwards')
        ranges.append((int(low), int(high), len(low)))
    return ranges


def _numbers(ranges):
    for low, high, width in ranges:
        for number in range(low, high + 1):
            yield str(number).zfill(width)
