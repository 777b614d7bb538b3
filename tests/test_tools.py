"""tools/train.py → test.py → export.py on a shrunken quick start, each in its own process."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from run_helpers import run_tool, tiny_config


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tools')
    teacher_config = tiny_config(tmp, 'vit_teacher', train_items=128, val_items=100)
    teacher = tmp / 'teacher.safetensors'
    config = tiny_config(tmp, 'kd', teacher=teacher, extra=f"teacher_configs = dict(vit={teacher_config!r})\n")
    rc, out = run_tool('tools/train.py', config, '--work-dir', str(tmp / 'kd'))
    assert rc == 0, out[-3000:]
    return config, tmp, teacher, out


@pytest.mark.slow
def test_missing_teacher_is_trained_first_and_summary_closes_the_log(trained_run):
    _, _, teacher, out = trained_run
    assert "checkpoint " + str(teacher) + " not found, so it is trained first" in out
    assert teacher.is_file()
    last = [line for line in out.splitlines() if 'kdzoo summary' in line][-1]
    assert 'teacher vit accuracy/top1' in last and 'student accuracy/top1' in last


@pytest.mark.slow
def test_existing_teacher_is_not_retrained(trained_run, tmp_path):
    config, tmp, teacher, _ = trained_run
    rc, out = run_tool('tools/train.py', config, '--work-dir', str(tmp_path / 'again'),
                       '--cfg-options', 'train_cfg.max_epochs=1')
    assert rc == 0, out[-2000:]
    assert 'trained first' not in out and "teacher 'vit' on the validation set" in out


@pytest.mark.slow
def test_test_tool_evaluates_the_student(trained_run):
    config, tmp, _, _ = trained_run
    rc, out = run_tool('tools/test.py', config, str(tmp / 'kd' / 'epoch_1.pth'), '--work-dir', str(tmp / 't'))
    assert rc == 0, out[-2000:]
    assert 'test results: accuracy/top1' in out


@pytest.mark.slow
def test_export_writes_a_bare_student_loadable_by_timm(trained_run):
    config, tmp, _, _ = trained_run
    rc, out = run_tool('tools/export.py', config, str(tmp / 'kd' / 'epoch_1.pth'), '--out-dir', str(tmp / 'x'))
    assert rc == 0, out[-2000:]
    assert 'parameters and buffers' in out
    assert 'ONNX vs PyTorch on a random batch of (2, 1, 32, 32): max |difference|' in out
    assert (tmp / 'x' / 'student.onnx').is_file()
    import timm
    from safetensors.torch import load_file
    student = timm.create_model('resnet10t', in_chans=1, num_classes=10, channels=(16, 32, 64, 128),
                                stem_width=16)
    student.load_state_dict(torch.load(tmp / 'x' / 'student.pth', weights_only=True))  # strict
    from_safetensors = load_file(str(tmp / 'x' / 'student.safetensors'))
    assert all(torch.equal(from_safetensors[k], v) for k, v in student.state_dict().items())
    run_state = torch.load(tmp / 'kd' / 'epoch_1.pth', weights_only=False)['state_dict']
    assert torch.equal(run_state['student.model.fc.weight'], student.fc.weight)


@pytest.mark.slow
def test_unknown_config_key_type_fails_clearly(tmp_path):
    config = tiny_config(tmp_path, 'student_only', extra="model = dict(distillers=[dict(type='kdd')])\n")
    rc, out = run_tool('tools/train.py', config, '--work-dir', str(tmp_path / 'w'))
    assert rc != 0 and "Unknown distiller 'kdd'" in out and "Did you mean 'kd'" in out


@pytest.mark.slow
def test_the_package_entry_point_trains_with_passive_openmp_wait(tmp_path):
    """``python -m kdzoo.cli.train`` (what the benchmark runs) needs no checkout; torch is loaded by ``import
    kdzoo`` before the module runs, so without OMP_WAIT_POLICY it starts itself again with the policy set."""
    config = tiny_config(tmp_path, 'student_only', train_items=32, val_items=32)
    env = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    proc = subprocess.run([sys.executable, '-m', 'kdzoo.cli.train', config, '--work-dir', str(tmp_path / 'w')],
                          cwd=tmp_path, env={**env, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'},
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'OpenMP wait policy PASSIVE' in out and 'kdzoo summary' in out
