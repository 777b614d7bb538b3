"""Every distiller trains a real student on the embedded MNIST data and lowers its loss.

Logit methods learn from a CNN teacher trained here for one short epoch (a ViT needs far longer on
MNIST before its logits carry signal); FitNet regresses the quick-start ViT's stage tokens, a target that
exists whatever the teacher's accuracy, so a randomly initialised ViT serves.
"""
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from run_helpers import random_vit_teacher, tiny_config

pytestmark = pytest.mark.slow   # real training runs: the end-to-end tier of every distiller

CNN_TEACHER = ("dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10, "
               "channels=(32, 64, 128, 256), stem_width=16)")


def train(config, work_dir):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.custom_hooks = []
    cfg.param_scheduler = None  # constant LR: the quick start's 50-iteration warm-up outlasts these runs
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.fixture(scope='module')
def cnn_teacher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('teacher')
    config = tiny_config(tmp, 'student_only', train_items=1024, val_items=200, batch_size=32,
                         extra=f"model = dict(student={CNN_TEACHER})\n")
    runner = train(config, tmp / 'run')
    assert runner.message_hub.get_scalar('val/accuracy/top1').current() > 50
    from kdzoo.tools_support import export_student
    return export_student(runner.model, str(tmp / 'teacher.safetensors'))


def loss_history(runner):
    hub = runner.message_hub
    return {key[6:]: hub.get_scalar(key).data[0] for key in hub.log_scalars if key.startswith('train/loss')}


# DIST and RKD have no quick-start config: they train from the KD one with their own distiller.
OWN_DISTILLER = {'dist': "distillers=[dict(type='dist')], ", 'rkd': "distillers=[dict(type='rkd')], "}


@pytest.mark.parametrize('method', ['kd', 'dkd', 'ofa', 'fitnet', 'dist', 'rkd'])
def test_distiller_training_lowers_the_loss(method, cnn_teacher, tmp_path):
    if method == 'fitnet':
        teacher, extra = random_vit_teacher(str(tmp_path / 'vit.safetensors')), ''
    else:  # a single `model =` line: a second one in the same config file would replace the first
        teacher, extra = None, (f"model = dict({OWN_DISTILLER.get(method, '')}teachers=dict(vit=dict("
                                f"checkpoint={cnn_teacher!r}, model=dict(_delete_=True, **{CNN_TEACHER}))))\n")
    config = tiny_config(tmp_path, 'kd' if method in OWN_DISTILLER else method, teacher=teacher, train_items=384, val_items=100, epochs=2,
                         batch_size=32, extra=extra)
    history = loss_history(train(config, tmp_path / 'run'))
    distill_terms = [k for k in history if k not in ('loss', 'loss_cls')]
    assert distill_terms, 'the distiller contributed no loss term'
    for name in ['loss', *distill_terms]:
        values = history[name]
        assert len(values) == 24 and np.isfinite(values).all(), name
        assert values[-6:].mean() < values[:6].mean(), (name, values)
    assert history['loss'][-6:].mean() < 0.9 * history['loss'][:6].mean(), history['loss']
