"""A cheap fingerprint of a dataset's contents, recorded in the teacher cache's manifest.

The teacher cache keys its entries by sample index, so a dataset whose files were edited in place (labels
changed, images replaced, rows reordered) under the same config and length would be given the old teacher
outputs. :func:`data_fingerprint` identifies the contents cheaply enough for ImageNet-sized sets
(docs/teacher_cache.md, "The manifest", has the measured cost):

- a dataset that defines ``fingerprint()`` is asked for it: a JSON-able value (a str, or a dict of strs,
  numbers and lists) that changes when its samples do, e.g. the sizes and modification times of the files it
  reads (see :func:`file_stats`); ``None`` means it cannot tell;
- otherwise a dataset with ``get_data_info(i)`` (every mmengine ``BaseDataset``) gets
  :func:`data_info_fingerprint`: SHA-256 over every sample's metadata in index order, plus the size and
  modification time of the files named by up to :data:`STAT_SAMPLES` evenly spaced samples;
- any other dataset gets ``None`` (nothing recorded: in-place edits are then not detected).
"""
import hashlib
import os

import numpy as np
import torch

STAT_SAMPLES = 1000
FILE_KEYS = ('path', 'filename', 'file_name')   # and every key ending in '_path' (img_path, ...)
SCALARS = (str, int, float, bool, type(None))


def data_fingerprint(dataset):
    """The dataset's own ``fingerprint()``, else :func:`data_info_fingerprint`, else None."""
    if callable(getattr(dataset, 'fingerprint', None)):
        return dataset.fingerprint()
    if callable(getattr(dataset, 'get_data_info', None)):
        return data_info_fingerprint(dataset)
    return None


def data_info_fingerprint(dataset, stat_samples=STAT_SAMPLES):
    """``{'data_info_sha256', 'files_sha256', 'files_checked'}`` of a dataset with ``get_data_info(i)``.

    ``data_info_sha256`` covers every sample's metadata (paths, labels, arrays by their bytes) in index order,
    so a relabelled, renamed, reordered or replaced in-memory sample changes it. ``files_sha256`` covers the
    size and ``st_mtime_ns`` of the files named by ``stat_samples`` evenly spaced samples (all of them when
    fewer): an image replaced in place under the same name changes it when its file is among them.
    """
    length = len(dataset)
    checked = set(np.linspace(0, length - 1, num=min(length, stat_samples)).round().astype(np.int64).tolist())
    infos, files = hashlib.sha256(), hashlib.sha256()
    num_files = 0
    for index in range(length):
        info = dataset.get_data_info(index)
        infos.update(canonical_bytes(info))
        if index in checked:
            for key, path in named_files(info):
                files.update(f'{index}:{key}:{path}:{stat_of(path)};'.encode())
                num_files += 1
    return dict(data_info_sha256=infos.hexdigest(), files_sha256=files.hexdigest() if num_files else None,
                files_checked=num_files)


def canonical_bytes(value):
    """An unambiguous byte encoding of a sample's metadata (dict keys sorted; arrays by dtype, shape, bytes)."""
    if type(value) is dict and all(type(item) in SCALARS for item in value.values()):
        return repr(sorted(value.items())).encode()   # the common case (paths and labels), at C speed
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return b'a%s%s:%d:' % (data.dtype.str.encode(), str(data.shape).encode(), data.nbytes) + data.tobytes()
    if isinstance(value, dict):
        return b'{' + b''.join(canonical_bytes(str(key)) + canonical_bytes(value[key])
                               for key in sorted(value, key=str)) + b'}'
    if isinstance(value, (list, tuple)):
        return b'[' + b''.join(canonical_bytes(item) for item in value) + b']'
    text = repr(value).encode()
    return b'%d:' % len(text) + text


def named_files(info):
    """``(key, path)`` of each local file a sample's metadata names (``img_path`` and the like)."""
    return [(key, value) for key, value in info.items()
            if isinstance(key, str) and (key in FILE_KEYS or key.endswith('_path'))
            and isinstance(value, str) and '://' not in value]


def stat_of(path):
    """``'size,mtime_ns'`` of a file, or ``'missing'``: the dataset's own loading reports missing files."""
    try:
        stat = os.stat(path)
    except OSError:
        return 'missing'
    return f'{stat.st_size},{stat.st_mtime_ns}'


def file_stats(paths):
    """``{name: 'size,mtime_ns'}`` of the files of ``{name: path}``: what a ``fingerprint()`` method can return
    for a dataset stored in a few big files (RecordIO, .bin, .npz)."""
    return {name: stat_of(path) for name, path in paths.items()}
