"""A teacher cache under 2-process CPU DDP: each rank fills its own samples; losses equal the live teacher's."""
import json
import os

import numpy as np
import pytest
import torch

from run_helpers import ROOT, free_port, random_vit_teacher, run_tool, tiny_config

from kdzoo.models.weights import load_checkpoint_file


def ddp_config(tmp_path, name, teacher, cache=None):
    cache_line = f", teacher_cache=dict(path={cache!r}, views=1)" if cache else ''
    extra = (f"model = dict(teachers=dict(vit=dict(checkpoint={teacher!r})){cache_line})\n"
             "randomness = dict(seed=0, deterministic=True)\ncustom_hooks = []\n")
    folder = tmp_path / name
    folder.mkdir()
    return tiny_config(folder, 'kd', train_items=128, val_items=100, epochs=2, batch_size=16, extra=extra)


def train_two_processes(config, work_dir):
    rc, out = run_tool('-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
                       os.path.join(ROOT, 'tools', 'train.py'), config, '--launcher', 'pytorch',
                       '--work-dir', str(work_dir))
    assert rc == 0, out[-3000:]
    return load_checkpoint_file(os.path.join(str(work_dir), 'epoch_2.pth'))['state_dict'], out


@pytest.mark.dist
def test_two_process_cached_run_equals_the_live_run_bit_for_bit(tmp_path):
    teacher = random_vit_teacher(str(tmp_path / 'teacher.safetensors'))
    cache = str(tmp_path / 'cache')
    live, _ = train_two_processes(ddp_config(tmp_path, 'live', teacher), tmp_path / 'live_run')
    cached, out = train_two_processes(ddp_config(tmp_path, 'cached', teacher, cache), tmp_path / 'cached_run')
    assert 'teacher cache' in out and '128 entries' in out
    assert live.keys() == cached.keys()
    different = [k for k in live if not torch.equal(live[k], cached[k])]
    assert not different, different[:5]
    assert np.load(os.path.join(cache, 'vit.logits', 'written.npy')).all()          # every sample written by one of the ranks
    with open(os.path.join(cache, 'vit.logits', 'manifest.json')) as f:
        assert json.load(f)['data']['length'] == 128
