"""Fill a config's teacher cache ahead of training: teachers only, no student step, big batches.

    python tools/cache_teacher.py CONFIG [--views K] [--batch-size N] [--device cuda|cpu] [--precision bf16|fp32]
                                         [--workers W] [--cfg-options k=v ...]

CONFIG sets ``model.teacher_cache=dict(path=..., views=K, ...)`` (docs/teacher_cache.md). The tool prints the
training data's fingerprint (recorded in the cache's manifest, so a cache filled before the data's files were
edited is refused) and the cache's size when full before it computes anything, then runs the teachers over
every (sample, view) of the training set that is not written yet, view by view. It is resumable: a killed fill
continues where it stopped (entries are marked written only after their data is flushed). ``--precision`` is
the teachers' autocast dtype; it is recorded in the cache's manifest, so training must use the same
``model.teacher_precision``.
One process: the entries are independent, so several fills of one cache (e.g. one per GPU) may run at once.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import kdzoo  # noqa: E402,F401  (registers kdzoo and applies the mmengine fixes)
from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Fill a config's teacher cache (model.teacher_cache).")
    parser.add_argument('config', help='a distillation config with model.teacher_cache set')
    parser.add_argument('--views', type=int, help='K views per sample (overrides model.teacher_cache.views)')
    parser.add_argument('--batch-size', type=int, default=256, help='teacher batch size (default 256)')
    parser.add_argument('--device', default='cpu', help="where the teachers run: 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'],
                        help="teachers' autocast dtype (default: the config's model.teacher_precision)")
    parser.add_argument('--workers', type=int, help="DataLoader workers (default: the train loader's)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. model.teacher_cache.dtype=fp16')
    return parser.parse_args(argv)


def load(args):
    """The config with the tool's overrides and a ReplayDataset training set."""
    from kdzoo.engine.teacher_cache import configure_teacher_cache
    from kdzoo.tools_support import load_config
    cfg = load_config(args.config, args.cfg_options)
    if not cfg.model.get('teacher_cache'):
        raise KeyError(f"{args.config} sets no model.teacher_cache; add "
                       "model=dict(teacher_cache=dict(path='work_dirs/<name>_cache', views=K)) or pass "
                       "--cfg-options model.teacher_cache.path=... model.teacher_cache.views=K")
    if args.views is not None:
        cfg.model.teacher_cache.views = args.views
    if args.precision is not None:
        cfg.model.teacher_precision = args.precision
    return configure_teacher_cache(cfg)


def build(cfg, device):
    """The DistillModel (its teachers and data preprocessor on ``device``) and the replayable training set."""
    import torch
    from kdzoo.registry import DATASETS, MODELS
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: no CUDA device is available here; use --device cpu")
    model = MODELS.build(cfg.model)
    model.teachers.to(device)
    model.data_preprocessor.to(device)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    dataset.full_init()
    return model, dataset


def pending_batches(cache, dataset, view, batch_size, workers):
    """A DataLoader over the (index, view) pairs of ``view`` whose entries are not written yet."""
    import numpy as np
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader
    indices = np.arange(len(dataset))
    todo = indices[~cache.store.is_written(indices * cache.views + view)]
    return len(todo), DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=pseudo_collate,
                                 sampler=[(int(i), view) for i in todo])


def fill(cache, model, dataset, batch_size, workers, on_batch=None):
    """Fill every missing entry, view by view; ``on_batch(count)`` is called after each written batch."""
    import torch
    device = next(model.teachers.parameters()).device
    for view in range(cache.views):
        todo, loader = pending_batches(cache, dataset, view, batch_size, workers)
        print(f"view {view}: {todo} of {len(dataset)} samples to compute", flush=True)
        start, done = time.perf_counter(), 0
        for batch in loader:
            data = model.data_preprocessor(batch, True)
            entries = cache.entries(data['data_samples'])
            with torch.no_grad():
                done += cache.fill(data['inputs'].to(device), entries)
            if on_batch is not None:
                on_batch(done)
        if done:
            print(f"view {view}: {done} written in {time.perf_counter() - start:.1f} s", flush=True)


def main(argv=None, on_batch=None):
    args = parse_args(argv)
    cfg = load(args)
    model, dataset = build(cfg, args.device)
    cache = model.teacher_cache
    start = time.perf_counter()
    fingerprint = dataset.fingerprint()     # once: the manifest below reuses it
    print(f"training data fingerprint ({time.perf_counter() - start:.1f} s): {json.dumps(fingerprint)}", flush=True)
    print(cache.size_report(dataset), flush=True)
    store = cache.open(dataset)
    print(f"{store.filled()} of {store.num_entries} entries already filled", flush=True)
    workers = args.workers if args.workers is not None else cfg.train_dataloader.get('num_workers', 0)
    fill(cache, model, dataset, args.batch_size, workers, on_batch)
    print(f"teacher cache {cache.folder}: {store.filled()} of {store.num_entries} entries filled", flush=True)
    return cache, dataset


if __name__ == '__main__':
    main()
