"""tools/cache_teacher.py: fills a config's teacher cache; a fill stopped mid-way resumes to the same result."""
import gzip
import importlib.util
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from run_helpers import ROOT, random_vit_teacher, tiny_config

spec = importlib.util.spec_from_file_location('cache_teacher', osp.join(ROOT, 'tools', 'cache_teacher.py'))
cache_teacher = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache_teacher)

FLIPS = ("[dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'), "
         "dict(type='mmpretrain.PackInputs')]")


def config(tmp_path, teacher, cache_dir, data_root=None):
    root = f", data_root={data_root!r}" if data_root else ''
    extra = (f"model = dict(teachers=dict(vit=dict(checkpoint={teacher!r})), "
             f"teacher_cache=dict(path={str(cache_dir)!r}, views=2))\n"
             f"train_dataloader = dict(batch_size=32, dataset=dict(num_items=20, pipeline={FLIPS}{root}))\n")
    return tiny_config(tmp_path, 'kd', train_items=20, extra=extra)


class Stop(Exception):
    pass


def stop_after(batches):
    seen = []

    def on_batch(done):
        seen.append(done)
        if len(seen) == batches:
            raise Stop()
    return on_batch


def arrays(cache):
    return {key: np.array(array) for key, array in cache.store.arrays.items()}


def test_a_stopped_fill_resumes_and_equals_an_uninterrupted_one(tmp_path, capsys):
    teacher = random_vit_teacher(str(tmp_path / 'vit.safetensors'))
    whole, _ = cache_teacher.main([config(tmp_path, teacher, tmp_path / 'whole'), '--batch-size', '8'])
    out = capsys.readouterr().out
    assert '40 entries (20 samples x 2 views), 1.6 KiB when full' in out
    assert whole.store.filled() == 40
    cfg = config(tmp_path, teacher, tmp_path / 'stopped')
    with pytest.raises(Stop):
        cache_teacher.main([cfg, '--batch-size', '8'], on_batch=stop_after(4))   # 3 batches of view 0, 1 of view 1
    resumed, _ = cache_teacher.main([cfg, '--batch-size', '8'])
    assert '28 of 40 entries already filled' in capsys.readouterr().out
    assert resumed.store.filled() == 40
    for key, values in arrays(whole).items():
        assert np.array_equal(arrays(resumed)[key], values), key


def test_filled_entries_are_the_teacher_on_each_view(tmp_path):
    teacher = random_vit_teacher(str(tmp_path / 'vit.safetensors'))
    cache, dataset = cache_teacher.main([config(tmp_path, teacher, tmp_path / 'cache'), '--batch-size', '16',
                                         '--views', '1', '--cfg-options', 'model.teacher_cache.dtype=fp16'])
    model = cache.model
    assert cache.views == 1 and cache.dtype == 'fp16'
    data = model.data_preprocessor(pseudo_collate([dataset[(i, 0)] for i in range(20)]), True)
    live = model.run_teachers(data['inputs'])['vit']['logits'].data
    cached = cache.features(data['inputs'], data['data_samples'])['vit']['logits'].data
    torch.testing.assert_close(cached, live.half().float(), rtol=0, atol=1e-3)


def test_a_fill_after_a_training_label_was_edited_is_refused(tmp_path, capsys):
    from kdzoo.datasets.mnist import EMBEDDED_ROOT, IMAGES, LABELS, split_indices
    digits = tmp_path / 'mnist'
    digits.mkdir()
    for name in (IMAGES, LABELS):
        shutil.copy(osp.join(EMBEDDED_ROOT, name), digits / name)
    teacher = random_vit_teacher(str(tmp_path / 'vit.safetensors'))
    cfg = config(tmp_path, teacher, tmp_path / 'cache', data_root=str(digits))
    cache_teacher.main([cfg, '--batch-size', '8'])
    assert '"data_info_sha256": "' in capsys.readouterr().out
    labels = bytearray(gzip.decompress((digits / LABELS).read_bytes()))
    first = 8 + int(split_indices(10000, 'train')[0])        # the first training digit, after the 8-byte header
    labels[first] = (labels[first] + 1) % 10
    (digits / LABELS).write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(ValueError, match=r'data\.fingerprint\.data_info_sha256 differs.*The training data changed'):
        cache_teacher.main([cfg, '--batch-size', '8'])


def test_a_config_without_a_cache_is_named(tmp_path):
    teacher = random_vit_teacher(str(tmp_path / 'vit.safetensors'))
    with pytest.raises(KeyError, match='sets no model.teacher_cache'):
        cache_teacher.main([tiny_config(tmp_path, 'kd', teacher=teacher)])


@pytest.mark.slow
def test_a_fill_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    teacher = random_vit_teacher(str(tmp_path / 'vit.safetensors'))
    whole, _ = cache_teacher.main([config(tmp_path, teacher, tmp_path / 'whole'), '--batch-size', '2'])
    cfg = config(tmp_path, teacher, tmp_path / 'killed')
    command = [sys.executable, osp.join(ROOT, 'tools', 'cache_teacher.py'), cfg, '--batch-size', '2']
    written = tmp_path / 'killed' / 'vit.logits' / 'written.npy'
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, 'OMP_NUM_THREADS': '1'},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (written.exists() and np.load(written, mmap_mode='r').any()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    filled = int(np.load(written).sum())
    assert 0 < filled < 40, 'the fill should have been killed part-way'
    resumed, _ = cache_teacher.main([cfg, '--batch-size', '2'])
    assert resumed.store.filled() == 40
    for key, values in arrays(whole).items():       # an entry cut mid-write is recomputed in its own batch
        np.testing.assert_allclose(arrays(resumed)[key], values, rtol=0, atol=1e-5)
