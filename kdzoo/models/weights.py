"""Reading checkpoint files without running code from them.

Every file kdzoo reads weights from (teacher checkpoints, ``load_from``, ``--resume``, tools/test.py and
tools/export.py) goes through :func:`load_checkpoint_file`: safetensors, or ``torch.load(weights_only=True)``.
mmengine's own checkpoints pickle a few objects besides tensors, so that load runs inside a
``torch.serialization.safe_globals`` context holding exactly the globals they need
(:data:`RUNNER_CHECKPOINT_GLOBALS`); the allow-list lives for that one call, not for the process. A file that
names any other global is refused with :class:`UnsafeCheckpointError`; a truncated or garbled file raises
:class:`UnreadableCheckpointError`. Both name the file.
"""
import contextlib
import contextvars
import os.path as osp
import pickle
import zipfile

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log

KEY_PREFIXES = ('', 'student.', 'module.', 'model.', 'student.model.', 'module.model.')
CONTAINER_KEYS = ('state_dict', 'model', 'module')


def history_buffer_statistic(owner, name):
    """Stands in for ``builtins.getattr`` while a Runner checkpoint loads.

    A pickled ``HistoryBuffer`` keeps its statistics methods as ``getattr(HistoryBuffer, 'mean')`` and so on.
    The real ``getattr`` would let a crafted file reach any attribute of an allowed object (a function's
    ``__globals__``, for one), so only these look-ups are answered."""
    if owner is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'refusing getattr({owner!r}, {name!r}): a checkpoint only ever looks up '
                                 "HistoryBuffer's statistics methods")


def _numpy_globals():
    """numpy arrays and scalars as pickled by numpy 2 (``numpy._core``) and numpy 1 (``numpy.core``)."""
    multiarray = np._core.multiarray
    found = [np.ndarray, np.dtype]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        found += [(multiarray._reconstruct, f'{module}._reconstruct'), (multiarray.scalar, f'{module}.scalar')]
    numeric = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
               np.float16, np.float32, np.float64, np.complex64, np.complex128)
    return found + [type(np.dtype(t)) for t in numeric]   # a dtype's class, e.g. numpy.dtypes.Float64DType


# What mmengine 0.10's Runner.save_checkpoint pickles besides tensors and plain containers (found with
# torch.serialization.get_unsafe_globals_in_checkpoint on real kdzoo checkpoints): the message hub's
# HistoryBuffer (with its statistics methods), numpy arrays inside it, and numpy scalars such as ``eta``.
RUNNER_CHECKPOINT_GLOBALS = [HistoryBuffer, (history_buffer_statistic, 'builtins.getattr'), *_numpy_globals()]

_trusted = contextvars.ContextVar('kdzoo_trusted_checkpoints', default=False)


@contextlib.contextmanager
def trusted_checkpoints(trust=True):
    """Inside this block checkpoint files are fully unpickled (``weights_only=False``): code in them runs.

    Only tools' ``--trust-checkpoint`` flag enters it, for files the user made; nothing falls back to it."""
    token = _trusted.set(bool(trust))
    try:
        yield
    finally:
        _trusted.reset(token)


@contextlib.contextmanager
def checkpoint_source(key):
    """Prefix a checkpoint error raised inside the block with the config key or argument that named the file."""
    try:
        yield
    except (UnreadableCheckpointError, UnsafeCheckpointError, FileNotFoundError) as error:
        raise type(error)(f'{key}: {error}') from error


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file pickles a global outside :data:`RUNNER_CHECKPOINT_GLOBALS`: loading it could run code."""


class UnreadableCheckpointError(ValueError):
    """The file is truncated, empty or not a checkpoint at all."""


def load_checkpoint_file(path, map_location='cpu'):
    """The object stored in checkpoint ``path``, read without running code from it (see the module docstring)."""
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f"checkpoint file {path!r} does not exist")
    if path.endswith('.safetensors'):
        return _load_safetensors(path, map_location)
    if _trusted.get():
        print_log(f'--trust-checkpoint: unpickling {path} with weights_only=False; code in it runs',
                  logger='current', level=30)
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(RUNNER_CHECKPOINT_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(_unsafe_message(path, error)) from error
    except (EOFError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError) as error:
        if isinstance(error, RuntimeError) and 'PytorchStreamReader' not in str(error):
            raise
        raise UnreadableCheckpointError(_unreadable_message(path, error)) from error


def _load_safetensors(path, map_location):
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    device = map_location if isinstance(map_location, str) else 'cpu'
    try:
        return load_file(path, device=device)
    except SafetensorError as error:
        raise UnreadableCheckpointError(_unreadable_message(path, error)) from error


def _unreadable_message(path, error):
    detail = str(error).splitlines()[0].split('. ')[0] if str(error) else ''
    reason = f'{type(error).__name__}: {detail}' if detail else type(error).__name__
    return (f"{path!r} cannot be read as a checkpoint ({reason}): the file is truncated (a copy or a save that "
            "was cut short) or is not a checkpoint. Copy or save it again, or point to another checkpoint.")


def _global_name(entry):
    return entry[1] if isinstance(entry, tuple) else f'{entry.__module__}.{entry.__qualname__}'


def _unsafe_globals(path):
    """Globals in ``path`` that neither torch's defaults nor :data:`RUNNER_CHECKPOINT_GLOBALS` allow."""
    allowed = {_global_name(entry) for entry in RUNNER_CHECKPOINT_GLOBALS}
    try:
        return [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(path) if name not in allowed]
    except Exception:   # a legacy (non-zip) file: torch's own message names the global
        return []


def _unpickler_reason(error):
    """The line of torch's long weights_only message that says what was refused."""
    text = str(error)
    detail = text.split('WeightsUnpickler error:', 1)[-1]
    return next((line.strip() for line in detail.splitlines() if line.strip()), type(error).__name__)


def _unsafe_message(path, error):
    offending = _unsafe_globals(path)
    what = (f"it names {', '.join(offending)}, outside the globals a Runner checkpoint needs" if offending
            else f"unpickling it needs more than tensors and the globals a Runner checkpoint needs "
                 f"({_unpickler_reason(error)})")
    return (f"refused to load {path!r}: {what}. Unpickling such a file can run code, so kdzoo loads checkpoints "
            "with weights_only=True. If the file is a plain weights file, write its tensors as safetensors; if "
            "you made it yourself and trust it, pass --trust-checkpoint (train/test/export), which unpickles it "
            "in full and runs any code in it.")


def read_state_dict(path):
    """Tensors of a weights file: a state dict, an mmengine checkpoint (``state_dict`` key) or safetensors."""
    obj = load_checkpoint_file(path)
    for key in CONTAINER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise TypeError(f"{path!r} holds no state dict (a mapping of names to tensors)")
    return obj


def _remap(state, strip, add):
    return {add + k[len(strip):]: v for k, v in state.items() if k.startswith(strip)}


def match_to_module(state, target_keys, prefix=None):
    """Rename checkpoint keys onto a module's keys, trying the usual wrapper prefixes; best overlap wins."""
    if prefix is not None:
        return _remap(state, prefix, '')
    candidates = [_remap(state, strip, add) for strip in KEY_PREFIXES for add in ('', 'model.')]
    return max(candidates, key=lambda mapped: len(mapped.keys() & target_keys))


def _listing(names, limit=12):
    names = sorted(names)
    more = f' … and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def load_weights(module, path, prefix=None, strict=True):
    """Load the weights file ``path`` into ``module`` (see :func:`load_state`)."""
    return load_state(module, read_state_dict(path), path, prefix, strict)


def load_state(module, state, source='state dict', prefix=None, strict=True):
    """Load ``state`` into ``module``; on any mismatch raise before touching the module (no half-load).

    Keys are matched through the usual wrapper prefixes, or by stripping ``prefix`` when it is given.
    Returns the (missing, unexpected) key names that were tolerated with ``strict=False``.
    """
    own = module.state_dict()
    mapped = match_to_module(state, set(own), prefix)
    missing = set(own) - set(mapped)
    unexpected = set(mapped) - set(own)
    wrong_shape = [f"{k}: checkpoint {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
                   for k in set(own) & set(mapped) if mapped[k].shape != own[k].shape]
    problems = []
    if strict and missing:
        problems.append(f"missing keys ({len(missing)}): {_listing(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches ({len(wrong_shape)}): {_listing(wrong_shape)}")
    if problems:
        raise KeyError(f"weights {source!r} do not fit {type(module).__name__}; nothing was loaded.\n  "
                       + '\n  '.join(problems))
    module.load_state_dict({k: v for k, v in mapped.items() if k in own}, strict=False)
    return sorted(missing), sorted(unexpected)
