"""Checkpoints survive kills and bad files, resume says what it does, and one work_dir takes one run.

Every test runs tools/train.py's ``main`` in-process on the tiny student-only quick start (2 iterations/epoch).
"""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

from kdzoo.engine.work_dir_lock import LOCK_NAME, WorkDirLockedError, acquire_work_dir, release_work_dir
from kdzoo.models.weights import UnreadableCheckpointError
from run_helpers import load_tool, random_vit_teacher, tiny_config


def train(config, work_dir, *extra):
    # A run of its own name: two in-process runs of one config in the same second would otherwise share
    # mmengine's logger (named config + timestamp) and log into the first run's file.
    name = f'run_{time.time_ns()}'
    load_tool('train').main([config, '--work-dir', str(work_dir), *extra, '--cfg-options', f'experiment_name={name}'])


def log_text(work_dir):
    return ''.join(open(path).read() for path in glob.glob(os.path.join(str(work_dir), '*', '*.log')))


def truncate(path):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


@pytest.fixture(scope='module')
def two_epochs(tmp_path_factory):
    """epoch_1.pth and epoch_2.pth of one tiny run, copied into each test's work dir by :func:`work_dir_with`."""
    tmp = tmp_path_factory.mktemp('checkpoints')
    config = tiny_config(tmp, 'student_only', train_items=64, val_items=50, batch_size=32, epochs=2,
                         extra='default_hooks = dict(checkpoint=dict(max_keep_ckpts=3))\n')
    train(config, tmp / 'source')
    return config, tmp / 'source'


def work_dir_with(two_epochs, work_dir, *names):
    _, source = two_epochs
    work_dir.mkdir()
    for name in names:
        shutil.copy(source / name, work_dir / name)
        os.utime(work_dir / name, (os.path.getmtime(source / name),) * 2)   # keep their order in time
    return work_dir


# ------------------------------------------------------------------------------- errors name the file and key

def test_truncated_teacher_checkpoints_name_the_file_and_the_key(tmp_path):
    from kdzoo.registry import MODELS
    for suffix in ('.safetensors', '.pth'):
        teacher = random_vit_teacher(str(tmp_path / f'teacher{suffix}.safetensors'))
        path = str(tmp_path / f'teacher{suffix}')
        if suffix == '.pth':
            import torch
            from safetensors.torch import load_file
            torch.save(load_file(teacher), path)
        else:
            shutil.copy(teacher, path)
        truncate(path)
        cfg = Config.fromfile(tiny_config(tmp_path, 'kd', teacher=path))
        with pytest.raises(UnreadableCheckpointError) as error:
            MODELS.build(cfg.model)
        assert str(error.value).startswith(f"model.teachers.vit: '{path}' cannot be read as a checkpoint")
        assert 'truncated' in str(error.value)


def test_truncated_load_from_names_the_file_and_the_key(two_epochs, tmp_path):
    config, source = two_epochs
    path = shutil.copy(source / 'epoch_1.pth', tmp_path / 'cut.pth')
    truncate(path)
    with pytest.raises(UnreadableCheckpointError, match=rf"^load_from: '{path}' cannot be read"):
        train(config, tmp_path / 'w', '--cfg-options', f'load_from={path}')


# ---------------------------------------------------------------------------------------- resume says what

def test_empty_last_checkpoint_falls_back_to_the_newest_intact_checkpoint(two_epochs, tmp_path):
    config, _ = two_epochs
    work_dir = work_dir_with(two_epochs, tmp_path / 'w', 'epoch_1.pth')
    (work_dir / 'last_checkpoint').write_text('')
    train(config, work_dir, '--resume')
    log = log_text(work_dir)
    assert f"{work_dir / 'last_checkpoint'} is empty" in log
    assert 'resumed epoch: 1, iter: 2' in log
    assert (work_dir / 'epoch_2.pth').is_file()


def test_resume_with_nothing_to_resume_warns_that_training_starts_from_scratch(two_epochs, tmp_path):
    config, _ = two_epochs
    train(config, tmp_path / 'w', '--resume', '--cfg-options', 'train_cfg.max_epochs=1')
    assert f"WARNING - --resume: no checkpoint in {tmp_path / 'w'}, so training starts from scratch" in \
        log_text(tmp_path / 'w')


def test_explicit_resume_from_a_missing_file_is_refused(two_epochs, tmp_path):
    config, _ = two_epochs
    missing = tmp_path / 'nowhere.pth'
    with pytest.raises(FileNotFoundError, match=rf'^--resume {missing} .*no such file'):
        train(config, tmp_path / 'w', '--resume', str(missing))


def test_last_checkpoint_naming_a_truncated_file_falls_back_and_says_why(two_epochs, tmp_path):
    config, _ = two_epochs
    work_dir = work_dir_with(two_epochs, tmp_path / 'w', 'epoch_1.pth', 'epoch_2.pth')
    truncate(work_dir / 'epoch_2.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))
    train(config, work_dir, '--resume')
    log = log_text(work_dir)
    assert f"'{work_dir / 'epoch_2.pth'}' cannot be read as a checkpoint" in log and 'Skipped it' in log
    assert f"resuming from {work_dir / 'epoch_1.pth'}, the newest intact checkpoint" in log
    assert 'resumed epoch: 1, iter: 2' in log


def test_explicit_truncated_resume_falls_back_to_the_work_dir(two_epochs, tmp_path):
    config, _ = two_epochs
    work_dir = work_dir_with(two_epochs, tmp_path / 'w', 'epoch_1.pth', 'epoch_2.pth')
    truncate(work_dir / 'epoch_2.pth')
    train(config, work_dir, '--resume', str(work_dir / 'epoch_2.pth'))
    assert 'resumed epoch: 1, iter: 2' in log_text(work_dir)


def test_no_intact_checkpoint_at_all_is_an_error(two_epochs, tmp_path):
    config, _ = two_epochs
    work_dir = work_dir_with(two_epochs, tmp_path / 'w', 'epoch_1.pth')
    truncate(work_dir / 'epoch_1.pth')
    with pytest.raises(UnreadableCheckpointError, match='^--resume: no intact checkpoint to resume from'):
        train(config, work_dir, '--resume')


# -------------------------------------------------------------------------------------- atomic checkpoints

def test_a_save_cut_short_leaves_no_checkpoint_under_its_final_name(two_epochs, tmp_path, monkeypatch):
    from mmengine.fileio import LocalBackend
    config, _ = two_epochs

    def put_half_then_die(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise RuntimeError('killed while saving')

    monkeypatch.setattr(LocalBackend, 'put', put_half_then_die)
    work_dir = tmp_path / 'w'
    with pytest.raises(RuntimeError, match='killed while saving'):
        train(config, work_dir, '--cfg-options', 'train_cfg.max_epochs=1')
    assert not (work_dir / 'epoch_1.pth').exists()
    assert glob.glob(str(work_dir / '.epoch_1.pth.*.partial'))
    monkeypatch.undo()
    train(config, work_dir, '--resume', '--cfg-options', 'train_cfg.max_epochs=1')   # the next run tidies up
    assert not glob.glob(str(work_dir / '.*.partial')) and (work_dir / 'epoch_1.pth').is_file()


# ---------------------------------------------------------------------------------------- one run, one dir

HOLD_LOCK = """
import fcntl, json, os, socket, sys
handle = open(sys.argv[1], 'a+')
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
json.dump(dict(pid=os.getpid(), host=socket.gethostname(), started='now', command='other run'), handle)
handle.flush()
print('locked', flush=True)
sys.stdin.read()
"""


def test_a_second_run_in_a_busy_work_dir_is_refused(two_epochs, tmp_path):
    config, _ = two_epochs
    work_dir = tmp_path / 'w'
    work_dir.mkdir()
    other = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, str(work_dir / LOCK_NAME)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == 'locked'
        with pytest.raises(WorkDirLockedError, match=rf'is in use by another run \(pid {other.pid} on '
                                                     rf'{socket.gethostname()}, started now, running `other run`\)'):
            train(config, work_dir)
        assert not list(work_dir.glob('*.py')), "the refused run wrote its config over the other run's"
    finally:
        other.communicate('')
    train(config, work_dir, '--cfg-options', 'train_cfg.max_epochs=1')   # free once the other run ended
    assert not (work_dir / LOCK_NAME).exists(), 'the lock is given back when the run ends'


def test_a_stale_lock_is_taken_over_with_a_warning(two_epochs, tmp_path):
    config, _ = two_epochs
    work_dir = tmp_path / 'w'
    work_dir.mkdir()
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (work_dir / LOCK_NAME).write_text(json.dumps(dict(pid=dead_pid, host=socket.gethostname(), started='then',
                                                      command='killed run')))
    train(config, work_dir, '--cfg-options', 'train_cfg.max_epochs=1')
    assert f'taking over a stale lock left by pid {dead_pid} on {socket.gethostname()}' in log_text(work_dir)
    assert not (work_dir / LOCK_NAME).exists()


def test_runners_of_one_process_share_its_lock(tmp_path):
    first = acquire_work_dir(tmp_path)
    assert acquire_work_dir(tmp_path) == first
    owner = json.loads(open(first).read())
    assert owner['pid'] == os.getpid() and owner['host'] == socket.gethostname()
    release_work_dir(first)
    assert os.path.exists(first)
    release_work_dir(first)
    assert not os.path.exists(first)
