"""A run killed with SIGKILL mid-epoch resumes from its last checkpoint and continues exactly.

Deterministic CPU settings make the comparison bitwise: the resumed run's per-iteration losses equal the
uninterrupted run's, and so do the final weights (student, connectors and teachers alike).
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from run_helpers import ROOT, random_vit_teacher, tiny_config

pytestmark = pytest.mark.slow   # three real training runs in subprocesses

ITERS_PER_EPOCH = 16
EPOCHS = 3


def losses_by_iter(work_dir):
    values = {}
    for path in glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')):
        for line in open(path):
            record = json.loads(line)
            if 'loss' in record and 'step' in record and 'lr' in record:
                values[record['step']] = record['loss']
    return values


def train_command(config, work_dir, *extra):
    return [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir, *extra]


def run_until_killed_mid_epoch(config, work_dir, epoch):
    """Start training and SIGKILL it once it has logged a few iterations of ``epoch``."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.Popen(train_command(config, work_dir), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = (epoch - 1) * ITERS_PER_EPOCH + ITERS_PER_EPOCH // 2
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if max(losses_by_iter(work_dir), default=0) >= target:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return max(losses_by_iter(work_dir))
        time.sleep(0.02)
    proc.kill()
    raise AssertionError('the run ended or stalled before it could be killed mid-epoch')


def test_kill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    teacher = random_vit_teacher(str(tmp_path / 'teacher.safetensors'))
    config = tiny_config(tmp_path, 'kd', teacher=teacher, train_items=ITERS_PER_EPOCH * 16, val_items=50,
                         batch_size=16, epochs=EPOCHS,
                         extra="randomness = dict(seed=0, deterministic=True)\ncustom_hooks = []\n")
    env = dict(os.environ, OMP_NUM_THREADS='1')
    straight, interrupted = str(tmp_path / 'straight'), str(tmp_path / 'interrupted')
    subprocess.run(train_command(config, straight), cwd=ROOT, env=env, check=True, capture_output=True)

    killed_at = run_until_killed_mid_epoch(config, interrupted, epoch=2)
    assert ITERS_PER_EPOCH < killed_at < 2 * ITERS_PER_EPOCH
    assert os.path.isfile(os.path.join(interrupted, 'epoch_1.pth'))
    assert not os.path.isfile(os.path.join(interrupted, 'epoch_2.pth'))
    result = subprocess.run(train_command(config, interrupted, '--resume'), cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert 'resumed' in (result.stdout + result.stderr).lower()

    expected, resumed = losses_by_iter(straight), losses_by_iter(interrupted)
    assert len(expected) == EPOCHS * ITERS_PER_EPOCH
    assert all(resumed[step] == expected[step] for step in expected), \
        {s: (expected[s], resumed[s]) for s in expected if resumed.get(s) != expected[s]}
    final = f'epoch_{EPOCHS}.pth'
    a = torch.load(os.path.join(straight, final), weights_only=False)['state_dict']
    b = torch.load(os.path.join(interrupted, final), weights_only=False)['state_dict']
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
