"""Every distiller trains a real student on the embedded MNIST data and lowers its loss."""
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from run_helpers import QUICKSTART, random_vit_teacher, tiny_config

METHODS = ['kd', 'dkd', 'fitnet', 'ofa']


@pytest.fixture(scope='module')
def trained_teacher(tmp_path_factory):
    """A quick-start ViT teacher trained for one short epoch, so its logits carry real signal."""
    tmp = tmp_path_factory.mktemp('teacher')
    cfg = Config.fromfile(tiny_config(tmp, 'vit_teacher', train_items=512, val_items=100, batch_size=32))
    cfg.work_dir = str(tmp / 'run')
    runner = Runner.from_cfg(cfg)
    runner.train()
    from kdzoo.tools_support import export_student
    return export_student(runner.model, str(tmp / 'teacher.safetensors'))


@pytest.mark.parametrize('method', METHODS)
def test_distiller_training_lowers_the_loss(method, trained_teacher, tmp_path):
    cfg = Config.fromfile(tiny_config(tmp_path, method, teacher=trained_teacher, train_items=384,
                                      val_items=100, epochs=2, batch_size=32))
    cfg.work_dir = str(tmp_path / 'run')
    cfg.custom_hooks = []
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 24 and np.isfinite(losses).all()
    assert losses[-6:].mean() < 0.9 * losses[:6].mean(), losses
    distill_terms = [k for k in runner.message_hub.log_scalars if k.startswith('train/loss_')
                     and k != 'train/loss_cls']
    assert distill_terms, 'the distiller contributed no loss term'
