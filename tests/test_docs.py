"""Code in the docs runs as written: the "adding a distiller", "adding an adapter" and "adding a task" tutorials,
end to end."""
import os

import pytest
import torch
from mmengine.config import Config

import kdzoo  # noqa: F401  (the 'kdzoo::' config prefix the examples inherit from)
from run_helpers import ROOT, markdown_examples, random_vit_teacher
from tiny_models import batch_of


def load_example_config(tmp_path, monkeypatch, markdown_file, config_name):
    for name, code in markdown_examples(markdown_file).items():
        (tmp_path / name).write_text(code)
    monkeypatch.chdir(tmp_path)  # a folder of its own: _base_ is kdzoo::quickstart/kd.py
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


def test_tutorial_adapter_changes_the_teacher_forward_keeps_its_keys_and_trains(tmp_path, monkeypatch):
    model = load_example_config(tmp_path, monkeypatch, 'docs/adding_an_adapter.md', 'token_gain_config.py')
    adapter = model.adapters[0]
    assert type(adapter).__name__ == 'TokenGain' and adapter.target == 'vit' and adapter.trainable
    assert model.teachers_need_grad
    from kdzoo.registry import MODELS
    bare_teacher = MODELS.build(Config.fromfile(os.path.join(ROOT, 'configs/quickstart/_models.py')).vit_teacher)
    assert set(model.teachers.vit.state_dict()) == set(bare_teacher.state_dict())
    assert 'adapters.0.gain' in model.state_dict()
    inputs, samples = torch.randn(4, 1, 32, 32), batch_of(range(4))
    teacher = model.teachers.vit
    with torch.no_grad():
        plain = teacher(inputs)
        adapter.gain.mul_(2)
        assert not torch.allclose(teacher(inputs), plain)
        adapter.gain.div_(2)
    losses = model.loss(inputs, samples)
    sum(losses.values()).backward()
    assert adapter.gain.grad is not None and adapter.gain.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    adapter.detach()
    with torch.no_grad():
        adapter.gain.mul_(2)
        assert torch.allclose(teacher(inputs), plain)


@pytest.mark.parametrize('page', ['getting_started.md', 'methods.md', 'adding_a_distiller.md', 'adding_an_adapter.md',
                                  'adding_a_task.md', 'adding_a_dataset.md',
                                  'configuration.md', 'distributed.md', 'faq.md', 'face_recognition.md', 'taps.md',
                                  'own_data.md', 'teacher_cache.md'])
def test_docs_are_linked_from_the_readme(page):
    assert f'docs/{page}' in open(os.path.join(ROOT, 'README.md')).read()


def test_tutorial_task_trains_the_student_with_its_loss_and_predicts_for_its_metric(tmp_path, monkeypatch):
    import torch.nn.functional as F
    from mmpretrain.evaluation import MultiLabelMetric
    from mmpretrain.structures import DataSample
    model = load_example_config(tmp_path, monkeypatch, 'docs/adding_a_task.md', 'multi_label_config.py')
    assert type(model.task).__name__ == 'MultiLabelTask' and model.task.num_classes == 10
    inputs = torch.randn(3, 1, 32, 32)
    samples = [DataSample().set_gt_label(labels) for labels in ([1, 4], [0], [2, 3, 9])]
    losses = model.train().loss(inputs, samples)
    assert set(losses) == {'loss_bce', 'loss_kd'}
    multi_hot = torch.zeros(3, 10)
    for row, labels in zip(multi_hot, ([1, 4], [0], [2, 3, 9])):
        row[labels] = 1
    torch.testing.assert_close(losses['loss_bce'], F.binary_cross_entropy_with_logits(model.student(inputs), multi_hot))
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.student.parameters())
    model.eval()
    with torch.no_grad():
        for name in ('student', 'vit'):
            predicted = model.predict(inputs, [DataSample().set_gt_label(s.gt_label) for s in samples],
                                      model_name=name)
            scores = model.named_models()[name](inputs).sigmoid()
            torch.testing.assert_close(predicted[2].pred_score, scores[2])
            assert predicted[2].pred_label.tolist() == torch.nonzero(scores[2] > 0.5).flatten().tolist()
    metric = MultiLabelMetric(thr=0.5)
    metric.process(None, [s.to_dict() for s in predicted])
    assert set(metric.compute_metrics(metric.results)) >= {'precision', 'recall', 'f1-score'}
