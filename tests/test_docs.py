"""Code in the docs runs as written: the "adding a distiller" tutorial, end to end."""
import os

import pytest
import torch
from mmengine.config import Config

from run_helpers import ROOT, markdown_examples, random_vit_teacher
from tiny_models import batch_of


def load_example_config(tmp_path, monkeypatch, markdown_file, config_name):
    for name, code in markdown_examples(markdown_file).items():
        (tmp_path / name).write_text(code)
    os.symlink(os.path.join(ROOT, 'configs'), tmp_path / 'configs')
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = Config.fromfile(str(tmp_path / config_name))
    cfg.model.teachers.vit.checkpoint = random_vit_teacher(str(tmp_path / 'teacher.safetensors'))
    from kdzoo.registry import MODELS
    return MODELS.build(cfg.model)


def test_tutorial_distiller_builds_trains_and_routes_gradients(tmp_path, monkeypatch):
    model = load_example_config(tmp_path, monkeypatch, 'docs/adding_a_distiller.md', 'cosine_hint_config.py')
    distiller = model.distillers[1]
    assert type(distiller).__name__ == 'CosineHint' and distiller.projector.in_features == 128
    inputs, samples = torch.randn(4, 1, 32, 32), batch_of(range(4))
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_cls', 'loss_kd', 'loss_cosine_hint'}
    assert 0 <= losses['loss_cosine_hint'].item() <= 4
    sum(losses.values()).backward()
    assert distiller.projector.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teachers.parameters())


@pytest.mark.parametrize('page', ['getting_started.md', 'methods.md', 'adding_a_distiller.md',
                                  'configuration.md', 'distributed.md', 'faq.md', 'face_recognition.md', 'taps.md',
                                  'own_data.md', 'teacher_cache.md'])
def test_docs_are_linked_from_the_readme(page):
    assert f'docs/{page}' in open(os.path.join(ROOT, 'README.md')).read()
