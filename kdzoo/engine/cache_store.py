"""On-disk storage of a teacher cache: memory-mapped ``.npy`` arrays, a written-map and a manifest.

Layout of a cache folder (entry ``e = sample_idx * K + view``; E = N·K entries)::

    manifest.json            what the cache was made from; written last when the folder is created
    written.npy              uint8 (E,): 1 once entry e is complete in every array
    <teacher>.<j>.<field>.npy  one array per field of the j-th tap of <teacher>, first dimension E

A tap is stored in the ``data`` field (E, *shape) in fp32 or fp16, or, for logits with top-k compression,
in ``values`` (E, k), ``indices`` (E, k) int32 and ``logsumexp`` (E,) fp32 (see :func:`decode_topk`).

Writes are ordered so that a half-written entry is never read: the data arrays are written and flushed
(``msync``) before the entry's byte in ``written.npy`` is set and flushed. One byte per entry (not one bit)
lets processes set entries concurrently without read-modify-write races: DDP ranks write their own samples
into the same shared mappings. The folder is created under an exclusive ``flock`` so ranks starting together
create it once.
"""
import fcntl
import json
import math
import os
import os.path as osp
from contextlib import contextmanager

import numpy as np
import torch
from numpy.lib.format import open_memmap

STORE_DTYPES = {'fp32': np.float32, 'fp16': np.float16}
MANIFEST = 'manifest.json'
WRITTEN = 'written.npy'
MIN_TAIL_MASS = 1e-8   # floor of the probability mass left outside the top-k (keeps the tail logit finite)


def uses_topk(spec, topk):
    """Top-k applies to a logits vector with more classes than k."""
    return bool(topk) and spec['name'] == 'logits' and spec['kind'] == 'vector' and spec['shape'][0] > topk


def tap_fields(spec, dtype, topk):
    """``{field: (shape per entry, numpy dtype)}`` stored for one tap."""
    if uses_topk(spec, topk):
        return {'values': ((topk,), STORE_DTYPES[dtype]), 'indices': ((topk,), np.int32),
                'logsumexp': ((), np.float32)}
    return {'data': (tuple(spec['shape']), STORE_DTYPES[dtype])}


def encode(tensor, spec, dtype, topk):
    """A float32 (B, ...) teacher output → ``{field: numpy array}`` as stored."""
    tensor = tensor.detach().float()
    if uses_topk(spec, topk):
        values, indices = tensor.topk(topk, dim=1)
        return {'values': values.cpu().numpy().astype(STORE_DTYPES[dtype]),
                'indices': indices.to(torch.int32).cpu().numpy(),
                'logsumexp': tensor.logsumexp(1).cpu().numpy()}
    return {'data': tensor.cpu().numpy().astype(STORE_DTYPES[dtype], copy=False)}


def decode(fields, spec, topk, device):
    """Stored fields → float32 tensor on ``device`` (the exact stored values for full taps)."""
    if uses_topk(spec, topk):
        return decode_topk(torch.from_numpy(fields['values']).float(), torch.from_numpy(fields['indices']).long(),
                           torch.from_numpy(fields['logsumexp']), spec['shape'][0]).to(device)
    return torch.from_numpy(fields['data']).to(device=device, dtype=torch.float32)


def decode_topk(values, indices, logsumexp, num_classes):
    """Logits from the top-k logits ``values`` at ``indices`` and the full logits' ``logsumexp``.

    The k stored logits are put back unchanged. Every other class gets one logit ``c`` chosen so that, at
    temperature 1, the softmax gives the top-k classes exactly the teacher's probabilities
    ``p_i = exp(z_i - logsumexp)`` and spreads the remaining mass ``r = 1 - Σ p_i`` uniformly:
    ``c = logsumexp + log(r / (C - k))``, with ``r`` floored at 1e-8. At other temperatures the top-k logits
    are still exact and the tail is the constant ``c``.
    """
    top_mass = (values - logsumexp[:, None]).exp().sum(1)
    rest = (1 - top_mass).clamp_min(MIN_TAIL_MASS)
    tail = logsumexp + (rest / (num_classes - values.shape[1])).log()
    logits = tail[:, None].expand(-1, num_classes).clone()
    return logits.scatter_(1, indices, values)


def normalised(obj):
    """A JSON round-trip of ``obj`` (tuples → lists, objects → their qualified names), for comparisons."""
    def name_of(o):
        return f"{getattr(o, '__module__', type(o).__module__)}.{getattr(o, '__qualname__', type(o).__name__)}"
    return json.loads(json.dumps(obj, default=name_of, sort_keys=True))


def flat_items(obj, prefix=''):
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from flat_items(value, f'{prefix}.{key}' if prefix else str(key))
    else:
        yield prefix, obj


def manifest_differences(stored, wanted):
    """Dotted paths (e.g. ``teachers.vit.weights_sha256``) whose values differ, with both values."""
    old, new = dict(flat_items(stored)), dict(flat_items(wanted))
    return [(key, old.get(key, '<absent>'), new.get(key, '<absent>'))
            for key in sorted(set(old) | set(new)) if old.get(key, '<absent>') != new.get(key, '<absent>')]


def short(value, limit=80):
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + '...'


@contextmanager
def locked(path):
    with open(path, 'a+') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class CacheStore:
    """The arrays of one cache folder, opened read-write as shared memory maps.

    Args:
        path: the cache folder (created if absent).
        manifest: what the cache is made from (JSON-able; see :class:`~kdzoo.engine.teacher_cache.TeacherCache`),
            with ``taps``: ``{teacher: [spec dict, ...]}``, ``dtype``, ``topk``, ``data.views``, ``data.length``.
    """

    def __init__(self, path, manifest):
        self.path = path
        self.manifest = normalised(manifest)
        self.num_entries = self.manifest['data']['length'] * self.manifest['data']['views']
        self.layout = {(teacher, j, field): (shape, dtype)
                       for teacher, specs in self.manifest['taps'].items() for j, spec in enumerate(specs)
                       for field, (shape, dtype) in tap_fields(spec, self.manifest['dtype'],
                                                               self.manifest['topk']).items()}
        os.makedirs(path, exist_ok=True)
        with locked(osp.join(path, '.lock')):
            if osp.isfile(osp.join(path, MANIFEST)):
                self._check_manifest()
            else:
                self._create()
        self.written = open_memmap(osp.join(path, WRITTEN), mode='r+')
        self.arrays = {key: open_memmap(self._file(key), mode='r+') for key in self.layout}

    def _file(self, key):
        teacher, j, field = key
        return osp.join(self.path, f'{teacher}.{j}.{field}.npy')

    def _create(self):
        for key, (shape, dtype) in self.layout.items():
            open_memmap(self._file(key), mode='w+', dtype=dtype, shape=(self.num_entries, *shape)).flush()
        open_memmap(osp.join(self.path, WRITTEN), mode='w+', dtype=np.uint8, shape=(self.num_entries,)).flush()
        partial = osp.join(self.path, MANIFEST + '.partial')
        with open(partial, 'w') as f:
            json.dump(self.manifest, f, indent=1, sort_keys=True)
        os.replace(partial, osp.join(self.path, MANIFEST))

    def _check_manifest(self):
        with open(osp.join(self.path, MANIFEST)) as f:
            stored = json.load(f)
        fix = "point model.teacher_cache.path at a new folder, or delete this one to rebuild it."
        if stored.get('format') != self.manifest.get('format'):
            raise ValueError(f"teacher cache {self.path} has manifest format {stored.get('format')}, but this kdzoo "
                             f"reads format {self.manifest.get('format')} (format 2 adds data.fingerprint, so that "
                             f"edited training files are detected); {fix}")
        differences = manifest_differences(stored, self.manifest)
        if differences:
            listed = '; '.join(f"{key} differs (cache: {short(old)}, now: {short(new)})"
                               for key, old, new in differences[:6])
            more = f" and {len(differences) - 6} more" if len(differences) > 6 else ''
            edited = (" The training data changed since the cache was filled (a label, a file or the order of the "
                      "samples)." if any(key.startswith('data.fingerprint') for key, _, _ in differences) else '')
            raise ValueError(f"teacher cache {self.path} was made for something else: {listed}{more}.{edited} Its "
                             f"outputs would not be this teacher's on this data; {fix}")

    # ------------------------------------------------------------- entries
    def is_written(self, entries):
        return self.written[entries].astype(bool)

    def read(self, entries):
        """``{(teacher, j, field): array (len(entries), ...)}``; the caller reads written entries only."""
        return {key: np.asarray(array[entries]) for key, array in self.arrays.items()}

    def write(self, entries, fields):
        """Store ``fields`` (as :meth:`read` returns them) for ``entries``, data first, then the written-map."""
        for key, array in self.arrays.items():
            array[entries] = fields[key]
        for array in self.arrays.values():
            array.flush()
        self.written[entries] = 1
        self.written.flush()

    def filled(self):
        return int(np.count_nonzero(self.written))

    def entry_bytes(self):
        return 1 + sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in self.layout.values())


def planned_bytes(manifest):
    """Bytes a cache with ``manifest`` takes on disk when full."""
    manifest = normalised(manifest)
    per_entry = 1 + sum(math.prod(shape) * np.dtype(dtype).itemsize
                        for specs in manifest['taps'].values() for spec in specs
                        for shape, dtype in tap_fields(spec, manifest['dtype'], manifest['topk']).values())
    return per_entry * manifest['data']['length'] * manifest['data']['views']


def human_bytes(count):
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if count < 1024 or unit == 'TiB':
            return f"{count:.1f} {unit}" if unit != 'B' else f"{count} B"
        count /= 1024
