"""tools/train.py checks teacher files before building anything, and --teacher-cfg-options reaches the teacher."""
import pytest
from mmengine.config import Config

from kdzoo.tools_support import check_teacher_checkpoints
from run_helpers import run_tool, tiny_config


def test_missing_teacher_checkpoint_without_teacher_config_fails_before_any_build(tmp_path):
    config = tiny_config(tmp_path, 'kd', teacher=tmp_path / 'absent.safetensors', extra='teacher_configs = None\n')
    with pytest.raises(FileNotFoundError, match=r"model\.teachers\.vit\.checkpoint: .*absent\.safetensors.* "
                                                r"does not exist.*teacher_configs"):
        check_teacher_checkpoints(Config.fromfile(config))


def test_missing_teacher_checkpoint_with_teacher_config_is_left_to_train_first(tmp_path):
    config = tiny_config(tmp_path, 'kd', teacher=tmp_path / 'absent.safetensors')
    check_teacher_checkpoints(Config.fromfile(config))  # teacher_configs will train it: no error


@pytest.mark.slow
def test_teacher_cfg_options_reach_the_teacher_trained_first(tmp_path):
    """Before: --cfg-options did not reach the teacher config; asked for 1 epoch, the teacher trained 10."""
    teacher = tmp_path / 'vit.safetensors'
    config = tiny_config(tmp_path, 'kd', teacher=teacher, train_items=64, val_items=32)
    rc, out = run_tool('tools/train.py', config, '--work-dir', str(tmp_path / 'run'), '--teacher-cfg-options',
                       'train_cfg.max_epochs=1', 'train_dataloader.dataset.num_items=64',
                       'val_dataloader.dataset.num_items=32', 'train_cfg.val_interval=1')
    assert rc == 0, out[-3000:]
    assert teacher.is_file()
    assert 'Epoch(train)  [2]' not in out.split('trained, weights written')[0]
    assert (tmp_path / 'vit_teacher_run' / 'epoch_1.pth').is_file()
    assert not (tmp_path / 'vit_teacher_run' / 'epoch_2.pth').exists()


@pytest.mark.slow
def test_missing_teacher_fails_fast_through_the_tool(tmp_path):
    config = tiny_config(tmp_path, 'kd', teacher=tmp_path / 'absent.safetensors', extra='teacher_configs = None\n')
    rc, out = run_tool('tools/train.py', config, '--work-dir', str(tmp_path / 'run'), timeout=120)
    assert rc != 0
    assert 'model.teachers.vit.checkpoint' in out.strip().splitlines()[-1]
    assert 'Config' not in out and not (tmp_path / 'run').exists()
