"""The README's "add your own distiller" example, run as written: its own module, custom_imports, no edits."""
import os
import sys

import pytest
import torch
from mmengine.config import Config

from run_helpers import ROOT, markdown_examples, random_vit_teacher
from tiny_models import batch_of


def test_readme_shows_the_commands_ci_runs():
    text = open(os.path.join(ROOT, 'README.md')).read()
    ci = open(os.path.join(ROOT, '.ci', 'run')).read()
    for command in ('pip install -e ".[dev]"', 'pytest', 'python tools/train.py configs/quickstart/kd.py',
                    'python tools/test.py configs/quickstart/kd.py work_dirs/kd/epoch_8.pth'):
        assert command in text and command in ci, command


def test_custom_distiller_from_the_readme(tmp_path, monkeypatch):
    examples = markdown_examples('README.md')
    assert set(examples) == {'my_distiller.py', 'my_config.py'}
    for name, code in examples.items():
        (tmp_path / name).write_text(code)
    monkeypatch.chdir(tmp_path)  # a folder of its own: _base_ is kdzoo::quickstart/kd.py
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = Config.fromfile(str(tmp_path / 'my_config.py'))
    assert 'my_distiller' in sys.modules
    cfg.model.teachers.vit.checkpoint = random_vit_teacher(str(tmp_path / 'teacher.safetensors'))
    from kdzoo.registry import MODELS
    model = MODELS.build(cfg.model)
    inputs, samples = torch.randn(4, 1, 32, 32), batch_of(range(4))
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_cls', 'loss_logit_mse'}
    expected = 0.5 * torch.nn.functional.mse_loss(model.student(inputs), model.teachers['vit'](inputs))
    assert losses['loss_logit_mse'].item() == pytest.approx(expected.item(), rel=1e-5)
