"""The augmentation-aware teacher-output cache: ``model.teacher_cache=dict(path=..., views=K, ...)``.

A frozen teacher is a pure function of its input. With the training set wrapped in
:class:`~kdzoo.datasets.ReplayDataset` (each sample's augmentation replays per (sample, view)), the outputs
of every teacher tap the distillers read are stored per (sample, view) in a :class:`CacheStore` and read back
instead of running the teacher. Entries missing from the cache are computed live on the samples that lack
them and written (lazy fill; under DDP each rank writes the samples its sampler gave it);
``tools/cache_teacher.py`` fills a cache ahead of time. docs/teacher_cache.md has the details.

Pieces: :class:`TeacherCache` (built by ``DistillModel``), :class:`TeacherCacheHook` (opens the cache with
the training set's description and sets the replay epoch) and :func:`configure_teacher_cache` (the one
config switch: wraps the training set and registers the hook).
"""
import hashlib
import os.path as osp
import re
import time

import numpy as np
import torch
from mmengine.hooks import Hook

from kdzoo.datasets.fingerprint import canonical_bytes
from kdzoo.datasets.replay import find_replay_dataset
from kdzoo.registry import HOOKS
from kdzoo.taps.recorder import unwrap
from .cache_store import STORE_DTYPES, CacheStore, decode, encode, human_bytes, planned_bytes

CACHE_KEYS = ('path', 'views', 'seed', 'dtype', 'topk')
FORMAT_VERSION = 2   # 2: data.fingerprint (the training set's contents) is recorded


def weights_sha256(modules):
    """SHA-256 of the modules' parameters and buffers (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for prefix, module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f'{prefix}.{name}:{tensor.dtype}:{tuple(tensor.shape)};'.encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def spec_dict(spec):
    return dict(name=spec.name, kind=spec.kind, shape=list(spec.shape), num_prefix=spec.num_prefix,
                grid=list(spec.grid) if spec.grid is not None else None)


def spec_from_dict(spec):
    from kdzoo.taps.feature import FeatureSpec
    return FeatureSpec(spec['name'], spec['kind'], tuple(spec['shape']), spec['num_prefix'],
                       tuple(spec['grid']) if spec['grid'] is not None else None)


def teacher_model_config(cfg):
    """The model part of a ``model.teachers`` entry (the checkpoint path is covered by the weights' hash)."""
    if not isinstance(cfg, dict):
        return repr(cfg)
    cfg = {k: v for k, v in cfg.items() if k not in ('checkpoint', 'checkpoint_prefix')}
    return cfg['model'] if 'model' in cfg and 'type' not in cfg else cfg


def uncacheable_reasons(model):
    """Why this DistillModel's teacher side is not a pure function of (sample, view), if it is not."""
    reasons = []
    for adapter in model.adapters:
        if adapter.target in model.teachers and adapter.trainable:
            reasons.append(f"adapter {type(adapter).__name__} trains on teacher {adapter.target!r}, so the "
                           "teacher's outputs change at every step")
    for distiller in model.distillers:
        if distiller.uses_inputs:
            reasons.append(f"distiller {type(distiller).__name__} reads the input batch itself, which a cache of "
                           "teacher tap outputs does not hold")
        if getattr(distiller, 'reads_bare_teacher', False):
            reasons.append(f"distiller {type(distiller).__name__} reads a second teacher pass with the adapters' "
                           "prompts disabled, which a cache of teacher tap outputs does not hold")
    if getattr(model.data_preprocessor, 'batch_augments', None) is not None:
        reasons.append("the data preprocessor's batch_augments (mixup/cutmix) mix the samples of a batch, so "
                       "a teacher input is not a function of one (sample, view)")
    if not any(name in model.recorders for name in model.teachers):
        reasons.append("no distiller reads a teacher tap, so there is nothing to cache")
    return reasons


class TeacherCache:
    """Teacher outputs per (sample, view) for one DistillModel.

    Args:
        model: the DistillModel (its recorders name the teacher taps the distillers read).
        path: the cache folder.
        views: K, replay views per sample (the training set's ReplayDataset must agree).
        seed: replay seed of the training set's ReplayDataset.
        dtype: ``'fp32'`` (exact) or ``'fp16'`` (half the size; fp16 rounding of every value).
        topk: keep only the k largest logits of each ``logits`` tap (plus the log-sum-exp) and rebuild the
            rest as in :func:`~kdzoo.engine.cache_store.decode_topk`; None keeps full logits.
        teacher_configs: ``model.teachers`` as configured (recorded in the manifest).
        preprocessor_config: the data preprocessor's config (normalisation is part of the teacher's input).
    """

    def __init__(self, model, path, views, seed=0, dtype='fp32', topk=None, teacher_configs=None,
                 preprocessor_config=None):
        if not path:
            raise ValueError("model.teacher_cache needs path=<folder for the cache>")
        if not isinstance(views, int) or views < 1:
            raise ValueError(f"model.teacher_cache.views must be an int >= 1, got {views!r}")
        if dtype not in STORE_DTYPES:
            raise ValueError(f"model.teacher_cache.dtype must be one of {list(STORE_DTYPES)}, got {dtype!r}")
        if topk is not None and (not isinstance(topk, int) or topk < 1):
            raise ValueError(f"model.teacher_cache.topk must be None or an int >= 1, got {topk!r}")
        reasons = uncacheable_reasons(model)
        if reasons:
            raise ValueError("model.teacher_cache cannot be used with this model: " + '; '.join(reasons) +
                             ". Remove model.teacher_cache to run the teachers live.")
        if topk is not None and model.task.output != 'logits':
            raise ValueError(f"model.teacher_cache.topk compresses class logits, but the task "
                             f"{type(model.task).__name__} has the teachers {self.cached_names(model)} output "
                             f"{model.task.output}s, which must be stored whole; remove topk")
        self.model = model
        self.path, self.views, self.seed, self.dtype, self.topk = path, views, seed, dtype, topk
        self.teacher_configs = teacher_configs or {}
        self.preprocessor_config = preprocessor_config
        self.store = None
        self.specs = {}
        self._hashes = {}

    @classmethod
    def from_config(cls, model, cfg, teacher_configs=None, preprocessor_config=None):
        unknown = [k for k in cfg if k not in CACHE_KEYS]
        if unknown:
            raise TypeError(f"model.teacher_cache got unknown keys {unknown}; accepted: {', '.join(CACHE_KEYS)}")
        return cls(model, teacher_configs=teacher_configs, preprocessor_config=preprocessor_config, **cfg)

    @staticmethod
    def cached_names(model):
        return [name for name in model.teachers if name in model.recorders]

    @property
    def cached_teachers(self):
        return self.cached_names(self.model)

    def manifest(self, replay):
        """What the cache is made from; a cache with another manifest is refused."""
        if (replay.views, replay.seed) != (self.views, self.seed):
            raise ValueError(f"model.teacher_cache has views={self.views}, seed={self.seed} but the training "
                             f"set's ReplayDataset has views={replay.views}, seed={replay.seed}; make them equal "
                             "(or leave the ReplayDataset out: configure_teacher_cache adds it)")
        teachers = {name: dict(weights_sha256=self.weights_hashes()[name],
                               model=teacher_model_config(self.teacher_configs.get(name)))
                    for name in self.cached_teachers}
        return dict(format=FORMAT_VERSION, teachers=teachers, data=replay.describe(),
                    data_preprocessor=self.preprocessor_config,
                    taps={name: [spec_dict(self.model.recorders[name].specs[tap])
                                 for tap in self.model.recorders[name].targets] for name in self.cached_teachers},
                    dtype=self.dtype, topk=self.topk,
                    teacher_precision=str(self.model.teacher_dtype or 'fp32'),
                    teacher_channels_last=self.model.teacher_channels_last)

    def weights_hashes(self):
        """``{teacher: SHA-256}`` of each cached teacher with its adapters, computed once (they are frozen)."""
        if not self._hashes:
            for name in self.cached_teachers:
                adapters = [(f'adapter{i}', a) for i, a in enumerate(self.model.adapters) if a.target == name]
                self._hashes[name] = weights_sha256([(name, self.model.teachers[name]), *adapters])
        return self._hashes

    @property
    def folder(self):
        """``path/<teacher>.<tap>+...``: one folder per set of cached taps, so methods that read the same taps
        (kd, dkd, dist: a teacher's logits) share one cache under one ``path`` and others get their own."""
        names = '+'.join(f'{name}.{tap}' for name in self.cached_teachers for tap in self.model.recorders[name].targets)
        names = re.sub(r'[^A-Za-z0-9_.+-]', '_', names)
        if len(names) > 100:
            names = names[:80] + '-' + hashlib.sha256(names.encode()).hexdigest()[:16]
        return osp.join(self.path, names)

    def open(self, replay):
        """Open (or create) the cache folder for the training set ``replay`` (a ReplayDataset)."""
        self.store = CacheStore(self.folder, self.manifest(replay))
        self.specs = {name: [spec_from_dict(s) for s in specs] for name, specs in self.store.manifest['taps'].items()}
        return self.store

    def size_report(self, replay):
        manifest = self.manifest(replay)
        entries = manifest['data']['length'] * self.views
        return (f"teacher cache {self.folder}: {entries} entries ({manifest['data']['length']} samples x "
                f"{self.views} views), {human_bytes(planned_bytes(manifest))} when full")

    # ------------------------------------------------------------- lookup
    def entries(self, data_samples):
        """Cache entries (sample_idx * K + view) of a batch, from the metainfo ReplayDataset sets."""
        try:
            ids = [(int(s.metainfo['sample_idx']), int(s.metainfo['view'])) for s in data_samples]
        except KeyError:
            raise KeyError("model.teacher_cache: the batch's data samples carry no 'sample_idx'/'view'; wrap the "
                           "training set in ReplayDataset (kdzoo.tools_support.build_runner does it when "
                           "model.teacher_cache is set)") from None
        ids = np.asarray(ids, dtype=np.int64).reshape(-1, 2)
        if (ids[:, 1] >= self.views).any():
            raise ValueError(f"model.teacher_cache: view {ids[:, 1].max()} in the batch, but the cache holds "
                             f"{self.views} views")
        return ids[:, 0] * self.views + ids[:, 1]

    def features(self, inputs, data_samples):
        """``{teacher: {tap: Feature}}`` for the batch, as :meth:`DistillModel.run_teachers` returns it."""
        if self.store is None:
            raise RuntimeError("model.teacher_cache was not opened: TeacherCacheHook opens it before training "
                               "(kdzoo.tools_support.build_runner registers it; or add "
                               "custom_hooks=[dict(type='kdzoo.TeacherCacheHook')])")
        return self.lookup(inputs, self.entries(data_samples))

    def lookup(self, inputs, entries):
        """Read written entries, run the teachers on the others (and write them), decode all of them."""
        written = self.store.is_written(entries)
        fields = {key: np.empty((len(entries), *shape), dtype) for key, (shape, dtype) in self.store.layout.items()}
        if written.any():
            for key, values in self.store.read(entries[written]).items():
                fields[key][written] = values
        missing = np.flatnonzero(~written)
        if missing.size:
            for key, values in self.compute(inputs, entries, missing).items():
                fields[key][missing] = values
        return self.decode(fields, inputs.device)

    def fill(self, inputs, entries):
        """Run the teachers on the batch's entries that are not written yet and write them; returns how many."""
        missing = np.flatnonzero(~self.store.is_written(entries))
        if missing.size:
            self.compute(inputs, entries, missing)
        return int(missing.size)

    def compute(self, inputs, entries, missing):
        """Run the teachers on the rows ``missing`` of the batch (the whole batch when all are missing, so a
        lazily filled entry is what the live teacher gives for that batch), write and return their fields."""
        if missing.size < len(entries):
            inputs = inputs[torch.as_tensor(missing, device=inputs.device)]
        fields = self.encode(self.model.run_teachers(inputs))
        self.store.write(entries[missing], fields)
        return fields

    def encode(self, features):
        fields = {}
        for name, specs in self.store.manifest['taps'].items():
            for j, spec in enumerate(specs):
                for field, array in encode(features[name][spec['name']].data, spec, self.dtype, self.topk).items():
                    fields[(name, j, field)] = array
        return fields

    def decode(self, fields, device):
        from kdzoo.taps.feature import Feature
        out = {}
        for name, specs in self.store.manifest['taps'].items():
            out[name] = {}
            for j, spec in enumerate(specs):
                own = {field: array for (teacher, k, field), array in fields.items() if teacher == name and k == j}
                out[name][spec['name']] = Feature(decode(own, spec, self.topk, device), self.specs[name][j])
        return out


@HOOKS.register_module()
class TeacherCacheHook(Hook):
    """Sets the ReplayDataset's epoch before every training epoch and opens the model's teacher cache.

    The epoch comes from the Runner (restored by ``--resume``), so view ``epoch mod K`` is the same whether a
    run was interrupted or not. Registered by :func:`configure_teacher_cache`.
    """

    priority = 'NORMAL'

    def before_train(self, runner):
        replay = self._replay(runner)
        cache = getattr(unwrap(runner.model), 'teacher_cache', None)
        if cache is None:
            return
        if replay is None:
            raise TypeError("model.teacher_cache needs the training set wrapped in ReplayDataset (per-sample "
                            "identity and replayable augmentation); build the runner with "
                            "kdzoo.tools_support.build_runner, which wraps it")
        start = time.perf_counter()
        replay.fingerprint()            # computed once here; the manifest reuses it
        seconds = time.perf_counter() - start
        store = cache.open(replay)
        runner.logger.info(f"{cache.size_report(replay)}; {store.filled()} filled (training data fingerprinted in "
                           f"{seconds:.1f} s)")

    def before_train_epoch(self, runner):
        replay = self._replay(runner)
        if replay is not None:
            replay.set_epoch(runner.epoch)

    @staticmethod
    def _replay(runner):
        from mmengine.runner import EpochBasedTrainLoop
        replay = find_replay_dataset(runner.train_loop.dataloader.dataset)
        if replay is not None and replay.views > 1 and not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise TypeError(f"ReplayDataset with views={replay.views} needs an epoch-based train loop (view = "
                            "epoch mod K); use train_cfg=dict(by_epoch=True, ...) or views=1")
        return replay


def configure_teacher_cache(cfg):
    """The config side of ``model.teacher_cache``: wrap the training set in ReplayDataset (views and seed from
    the cache settings) and register :class:`TeacherCacheHook`. A training set already wrapped in a
    ReplayDataset also gets the hook (it sets the replay epoch). Returns ``cfg``."""
    cache = (cfg.get('model') or {}).get('teacher_cache')
    loader = cfg.get('train_dataloader')
    if not loader:
        return cfg
    dataset = loader['dataset']
    is_replay = str(dataset.get('type', '')).split('.')[-1] == 'ReplayDataset'
    if cache and not is_replay:
        loader['dataset'] = dict(type='kdzoo.ReplayDataset', dataset=dataset, views=cache['views'],
                                 seed=cache.get('seed', 0))
    elif cache and (dataset.get('views'), dataset.get('seed', 0)) != (cache['views'], cache.get('seed', 0)):
        raise ValueError(f"model.teacher_cache has views={cache['views']}, seed={cache.get('seed', 0)} but the "
                         f"training set's ReplayDataset has views={dataset.get('views')}, "
                         f"seed={dataset.get('seed', 0)}; make them equal")
    hooks = list(cfg.get('custom_hooks') or [])
    if (cache or is_replay) and not any(str(h.get('type', '')).split('.')[-1] == 'TeacherCacheHook' for h in hooks):
        hooks.append(dict(type='kdzoo.TeacherCacheHook'))
        cfg.custom_hooks = hooks
    return cfg


class FixedBatch:
    """What a cache records when it holds one fixed batch instead of a training set (tools/speed.py)."""

    views, seed = 1, 0

    def __init__(self, batch):
        self.batch = batch

    def describe(self):
        inputs = self.batch['inputs']
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        digest = hashlib.sha256()
        for tensor in inputs:
            digest.update(canonical_bytes(tensor))
        return dict(dataset='one fixed batch', views=1, seed=0, length=len(self.batch['data_samples']),
                    fingerprint=dict(inputs_sha256=digest.hexdigest()))


@torch.no_grad()
def fill_for_batch(model, batch):
    """Tag ``batch``'s samples as entries 0..B-1 (view 0), open ``model``'s cache for them and fill it."""
    for index, sample in enumerate(batch['data_samples']):
        sample.set_metainfo(dict(sample_idx=index, view=0))
    cache = model.teacher_cache
    cache.open(FixedBatch(batch))
    data = model.data_preprocessor(batch, True)
    cache.fill(data['inputs'], cache.entries(data['data_samples']))
