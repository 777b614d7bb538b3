"""Replayable augmentation: a dataset wrapper whose random pipeline is a function of (seed, index, view).

``ReplayDataset(dataset=..., views=K, seed=S)`` draws sample ``i`` in epoch ``e`` as view ``v = e mod K``:
python's ``random``, numpy's global RNG and torch's CPU RNG are seeded from (S, i, v) around the wrapped
dataset's ``__getitem__`` and restored afterwards, so the same (i, v) gives the same tensors in any worker,
in any epoch, on any rank and after a resume. Each packed sample records ``sample_idx`` and ``view`` in its
metainfo: the identity :mod:`kdzoo.engine.teacher_cache` keys teacher outputs by.

The epoch lives in a one-element tensor in shared memory, so DataLoader workers (forked or spawned,
persistent or not) read the value :meth:`ReplayDataset.set_epoch` wrote in the main process.
:class:`~kdzoo.engine.teacher_cache.TeacherCacheHook` calls it before every training epoch (after a resume
the Runner's restored epoch), before the epoch's data iterator exists. An index may also be given as an
explicit ``(index, view)`` pair, as ``tools/cache_teacher.py`` does.
"""
import contextvars
import copy
import logging
import random

import numpy as np
import torch
from mmengine.logging import print_log

from kdzoo.registry import DATASETS
from .fingerprint import data_fingerprint

SEED_BITS = 2 ** 32
# The view being drawn, for transforms that make views differ on purpose (ViewFlip); None outside a replay.
CURRENT_VIEW = contextvars.ContextVar('kdzoo_replay_view', default=None)


def view_seeds(seed, index, view):
    """Three independent 32-bit seeds (python, numpy, torch) from (seed, index, view)."""
    return np.random.SeedSequence([int(seed), int(index), int(view)]).generate_state(3)


class seeded_rngs:
    """Context manager: seed python/numpy/torch (CPU) RNGs from (seed, index, view); restore them on exit."""

    def __init__(self, seed, index, view):
        self.seeds = view_seeds(seed, index, view)

    def __enter__(self):
        self.saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(int(self.seeds[0]))
        np.random.seed(int(self.seeds[1]))
        torch.default_generator.manual_seed(int(self.seeds[2]))  # CPU only: CUDA RNGs are left alone

    def __exit__(self, *exc):
        python, numpy_state, torch_state = self.saved
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        return False


@DATASETS.register_module()
class ReplayDataset:
    """Wrap ``dataset`` so that its augmentation replays exactly per (sample, view).

    Args:
        dataset: the wrapped dataset (config or object); its items must be packed samples
            (``{'inputs': ..., 'data_samples': DataSample}``, e.g. ending in ``mmpretrain.PackInputs``).
        views: K, the number of distinct augmented views per sample; epoch e uses view e mod K.
        seed: replay seed (independent of the run's seed, so runs with other seeds can share a teacher cache).
    """

    def __init__(self, dataset, views, seed=0):
        if not isinstance(views, int) or views < 1:
            raise ValueError(f"ReplayDataset: views must be an int >= 1, got {views!r}")
        if not isinstance(seed, int) or not 0 <= seed < SEED_BITS:
            raise ValueError(f"ReplayDataset: seed must be an int in [0, 2**32), got {seed!r}")
        self.dataset_cfg = copy.deepcopy(dataset) if isinstance(dataset, dict) else None
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.views = views
        self.seed = seed
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._fingerprint = None

    # mmengine's Runner calls full_init() on what it builds and reads metainfo from it
    def full_init(self):
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    @property
    def metainfo(self):
        return copy.deepcopy(getattr(self.dataset, 'metainfo', {}))

    def __len__(self):
        return len(self.dataset)

    def set_epoch(self, epoch):
        self._epoch[0] = int(epoch)

    @property
    def epoch(self):
        return int(self._epoch[0])

    @property
    def current_view(self):
        return self.epoch % self.views

    def __getitem__(self, index):
        index, view = index if isinstance(index, tuple) else (index, self.current_view)
        index, view = int(index), int(view)
        if not 0 <= view < self.views:
            raise IndexError(f"ReplayDataset: view {view} is outside 0..{self.views - 1}")
        token = CURRENT_VIEW.set(view)
        try:
            with seeded_rngs(self.seed, index, view):
                data = self.dataset[index]
        finally:
            CURRENT_VIEW.reset(token)
        samples = data.get('data_samples') if isinstance(data, dict) else None
        if samples is None or not hasattr(samples, 'set_metainfo'):
            raise TypeError("ReplayDataset: the wrapped dataset's items must be packed samples with a "
                            "'data_samples' entry (end the pipeline with mmpretrain.PackInputs); got "
                            f"{type(data).__name__} with keys {list(data) if isinstance(data, dict) else '-'}")
        samples.set_metainfo(dict(sample_idx=index, view=view))
        return data

    def describe(self):
        """What a teacher cache records about the data: the wrapped dataset's config, K, seed, length and
        :meth:`fingerprint`."""
        return dict(dataset=self.dataset_cfg if self.dataset_cfg is not None else repr(self.dataset),
                    views=self.views, seed=self.seed, length=len(self), fingerprint=self.fingerprint())

    def fingerprint(self):
        """The wrapped dataset's contents (:func:`~kdzoo.datasets.fingerprint.data_fingerprint`), computed once."""
        if self._fingerprint is None:
            value = data_fingerprint(self.dataset)
            if value is None:
                print_log(f"ReplayDataset: {type(self.dataset).__name__} defines no fingerprint() and no "
                          "get_data_info(), so a teacher cache cannot tell when its files are edited in place; "
                          "after editing them, point model.teacher_cache.path at a new folder (docs/teacher_cache.md)",
                          logger='current', level=logging.WARNING)
            self._fingerprint = (value,)
        return self._fingerprint[0]

    def __repr__(self):
        return f"ReplayDataset({type(self.dataset).__name__}, {len(self)} samples, views={self.views}, seed={self.seed})"


def find_replay_dataset(dataset):
    """The ReplayDataset at or under ``dataset`` (through ``.dataset`` wrappers), or None."""
    seen = 0
    while dataset is not None and seen < 8:
        if isinstance(dataset, ReplayDataset):
            return dataset
        dataset, seen = getattr(dataset, 'dataset', None), seen + 1
    return None


def current_view():
    """The view ReplayDataset is drawing now, or None when no replay is under way."""
    return CURRENT_VIEW.get()
