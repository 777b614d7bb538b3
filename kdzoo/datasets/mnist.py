"""The embedded MNIST test set (10,000 real digits) as a small train/test classification set.

Split rule (fixed, documented in kdzoo/data/mnist/README.md): a permutation of the 10,000 indices by
``numpy.random.default_rng(0)``; the first 8,000 are ``train``, the last 2,000 ``test``. ``num_items``
keeps only the first N images of a split in that order (e.g. a student that sees little data).
Images are zero-padded by ``pad`` pixels per side (default 2, giving 32×32) so patch-4 ViTs get an 8×8 grid.
"""
import gzip
import os.path as osp

import numpy as np
from mmengine.dataset import BaseDataset

from kdzoo.registry import DATASETS

EMBEDDED_ROOT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'mnist')
IMAGES, LABELS = 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'
NUM_TRAIN, SPLIT_SEED = 8000, 0


def read_idx(path, magic, header_bytes):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    found = int.from_bytes(raw[:4], 'big')
    if found != magic:
        raise ValueError(f"{path} is not an IDX file of the expected kind (magic {found}, expected {magic})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes)


def load_mnist(root):
    paths = [osp.join(root, name) for name in (IMAGES, LABELS)]
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        raise FileNotFoundError(f"MNIST files not found: {missing}. The embedded copy lives in "
                                f"{EMBEDDED_ROOT}; set the dataset's data_root to a folder holding {IMAGES} "
                                f"and {LABELS}.")
    images = read_idx(paths[0], 2051, 16).reshape(-1, 28, 28)
    labels = read_idx(paths[1], 2049, 8)
    return images, labels


def split_indices(num_items, split):
    order = np.random.default_rng(SPLIT_SEED).permutation(num_items)
    return order[:NUM_TRAIN] if split == 'train' else order[NUM_TRAIN:]


@DATASETS.register_module()
class EmbeddedMNIST(BaseDataset):
    """MNIST digits from kdzoo's embedded copy; items are ``{'img': (H, W) uint8, 'gt_label': int}``."""

    METAINFO = {'classes': tuple(str(d) for d in range(10))}

    def __init__(self, split='train', data_root=EMBEDDED_ROOT, num_items=None, pad=2, **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.split, self.num_items, self.pad = split, num_items, pad
        super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self):
        images, labels = load_mnist(self.data_root)
        indices = split_indices(len(images), self.split)
        if self.num_items:
            indices = indices[:self.num_items]
        if self.pad:
            images = np.pad(images, ((0, 0), (self.pad, self.pad), (self.pad, self.pad)))
        return [dict(img=images[i], gt_label=int(labels[i])) for i in indices]
