"""Loading weights a user hands kdzoo: safetensors, or ``torch.load(weights_only=True)``, never a pickle."""
import os.path as osp
import pickle

import torch

KEY_PREFIXES = ('', 'student.', 'module.', 'model.', 'student.model.', 'module.model.')
CONTAINER_KEYS = ('state_dict', 'model', 'module')


def read_state_dict(path):
    """Tensors of a weights file: a state dict, an mmengine checkpoint (``state_dict`` key) or safetensors."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device='cpu')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        raise pickle.UnpicklingError(
            f"refused to load {path!r}: it pickles Python objects, not only tensors, and kdzoo loads weights "
            "with weights_only=True because unpickling can run code. If this is a training checkpoint you "
            "made yourself, write its bare weights with `python tools/export.py CONFIG CHECKPOINT` and load "
            f"those instead. ({str(error).splitlines()[0]})") from None
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
