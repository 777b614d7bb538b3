"""The task protocol (kdzoo/tasks, kdzoo/face/task.py): what DistillModel delegates to its task, and a task of
one's own registered in TASKS."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

import kdzoo  # noqa: F401
from kdzoo.face.task import FaceRecognitionTask
from kdzoo.models import DistillModel
from kdzoo.registry import TASKS
from kdzoo.tasks import BaseTask, ClassificationTask
from tiny_models import TinyConvNet, batch_of

TINY = dict(type='ImportedModel', path='tiny_models:TinyConvNet', in_chans=3)
SMALL_MFN = dict(type='mobilefacenet', blocks=(1, 1, 1, 1))
FACE = dict(type='FaceRecognizer', backbone=SMALL_MFN, head=dict(type='ArcFaceHead', num_classes=5))
FACE_INPUT = (3, 112, 112)


def classifier(**kwargs):
    return DistillModel(student=TINY, input_size=(3, 16, 16), **kwargs)


# ---------------------------------------------------------------------------------------------- classification
def test_a_classifier_student_gets_the_classification_task_with_distill_models_label_smoothing():
    assert isinstance(classifier().task, ClassificationTask) and classifier().task.label_smoothing == 0.0
    assert classifier(label_smoothing=0.1).task.label_smoothing == 0.1
    assert classifier(task='classification').task.label_smoothing == 0.0


def test_classification_loss_is_cross_entropy_with_label_smoothing_and_soft_labels():
    torch.manual_seed(0)
    logits, labels = torch.randn(4, 10), torch.tensor([1, 0, 9, 3])
    task = ClassificationTask(label_smoothing=0.1)
    smoothed = F.one_hot(labels, 10).float() * 0.9 + 0.1 / 10
    expected = -(smoothed * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(task.loss(None, logits, labels, None)['loss_cls'], expected)
    soft = torch.softmax(torch.randn(4, 10), 1)
    mixed = ClassificationTask().loss(None, logits, labels, soft)['loss_cls']
    torch.testing.assert_close(mixed, -(soft * logits.log_softmax(1)).sum(1).mean())


def test_classification_targets_take_soft_labels_from_a_mixed_batch():
    plain = batch_of([2, 7])
    labels, soft = ClassificationTask().targets(plain)
    assert labels.tolist() == [2, 7] and soft is None
    mixed = [DataSample().set_gt_label(0).set_gt_score(torch.tensor([0.2, 0.8, 0.0])),
             DataSample().set_gt_label(2).set_gt_score(torch.tensor([0.0, 0.3, 0.7]))]
    labels, soft = ClassificationTask().targets(mixed)
    assert labels.tolist() == [1, 2] and soft.shape == (2, 3)


def test_classification_loss_through_distill_model_is_weighted():
    torch.manual_seed(0)
    model = classifier(label_smoothing=0.2, task_loss_weight=0.5).train()
    inputs, samples = torch.randn(2, 3, 16, 16), batch_of([4, 1])
    losses = model.loss(inputs, samples)
    expected = F.cross_entropy(model.student(inputs), torch.tensor([4, 1]), label_smoothing=0.2)
    assert list(losses) == ['loss_cls']
    torch.testing.assert_close(losses['loss_cls'], 0.5 * expected)


def test_classification_prediction_is_the_softmax():
    model = classifier().eval()
    inputs = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        samples = model.predict(inputs)
        scores = model.student(inputs).softmax(1)
    torch.testing.assert_close(samples[1].pred_score, scores[1])
    assert samples[1].pred_label.tolist() == [scores[1].argmax().item()]


def test_label_smoothing_out_of_range_is_refused_at_build():
    with pytest.raises(ValueError, match=r'label_smoothing must be in \[0, 1\]'):
        classifier(label_smoothing=1.5)


# ---------------------------------------------------------------------------------------------- face recognition
def face_model(**kwargs):
    return DistillModel(student=FACE, input_size=FACE_INPUT, **kwargs)


def test_a_face_recognizer_declares_its_task_and_flip_test_goes_to_it():
    assert isinstance(face_model().task, FaceRecognitionTask) and face_model().task.flip_test
    assert not face_model(flip_test=False).task.flip_test
    assert face_model().task.output == 'embedding' and classifier().task.output == 'logits'


def test_face_loss_is_the_margin_heads_loss():
    torch.manual_seed(0)
    model = face_model().train()
    faces, labels = torch.randn(2, *FACE_INPUT), torch.tensor([3, 1])
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    torch.manual_seed(1)
    losses = model.loss(faces, samples)
    torch.manual_seed(1)
    expected = model.student.head(model.student(faces), labels)
    assert list(losses) == ['loss_arcface']
    torch.testing.assert_close(losses['loss_arcface'], expected)


def test_face_loss_needs_a_margin_head():
    with pytest.raises(TypeError, match="FaceRecognizer"):
        FaceRecognitionTask().loss(TinyConvNet(), torch.randn(2, 10), torch.tensor([0, 1]), None)


def test_face_prediction_embeds_the_faces_and_their_flips_for_a_bare_backbone_teacher_too():
    model = face_model(teachers=dict(t=dict(model=dict(type='mobilefacenet', blocks=(1, 1, 1, 1))))).eval()
    faces = torch.randn(2, *FACE_INPUT)
    with torch.no_grad():
        for name in ('student', 't'):
            network = model.named_models()[name]
            [first, second] = model.predict(faces, [DataSample(), DataSample()], model_name=name)
            torch.testing.assert_close(second.pred_embedding, network(faces)[1])
            torch.testing.assert_close(second.pred_embedding_flip, network(faces.flip(3))[1])
        plain = FaceRecognitionTask(flip_test=False).predict(model.student, faces)
    assert 'pred_embedding' in plain[0] and 'pred_embedding_flip' not in plain[0]


def test_sharded_partial_fc_centres_are_kept_out_of_ddp(monkeypatch):
    from kdzoo.face.models import heads
    monkeypatch.setattr(heads, 'distributed_world', lambda: (0, 2))   # rank 0 of 2: 6 of the 11 centres
    partial_fc = dict(FACE, head=dict(type='PartialFC', num_classes=11))
    model = DistillModel(student=partial_fc, teachers=dict(t=dict(model=partial_fc)), input_size=FACE_INPUT)
    assert model.student.head.weight.shape[0] == 6
    assert sorted(model.ddp_ignored_parameters) == ['student.head.weight', 'teachers.t.head.weight']
    assert sorted(model._ddp_params_and_buffers_to_ignore) == sorted(model.ddp_ignored_parameters)
    assert classifier().task.ddp_ignored_parameters(classifier()) == []


def test_export_metadata_names_the_tasks_output():
    from mmengine.config import ConfigDict
    from kdzoo.tools_support import deployment_info
    cfg = ConfigDict(model=dict(data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3)))
    assert deployment_info(cfg, face_model())['output'] == 'embedding'
    assert deployment_info(cfg, classifier())['output'] == 'logits'


# ---------------------------------------------------------------------------------------------- options and names
def test_an_option_the_task_has_no_use_for_is_refused_naming_it():
    with pytest.raises(TypeError, match=r"model.label_smoothing=0.1 has no meaning for the task 'face_recognition'"):
        face_model(label_smoothing=0.1)
    with pytest.raises(TypeError, match=r"model.flip_test=True has no meaning .* remove model.flip_test"):
        classifier(flip_test=True)


def test_the_task_can_be_named_by_config_and_options_must_agree():
    model = classifier(task=dict(type='ClassificationTask', label_smoothing=0.3))
    assert model.task.label_smoothing == 0.3
    agreed = classifier(task=dict(type='classification', label_smoothing=0.3), label_smoothing=0.3)
    assert agreed.task.label_smoothing == 0.3
    with pytest.raises(ValueError, match='differ; set only one'):
        classifier(task=dict(type='classification', label_smoothing=0.3), label_smoothing=0.1)
    with pytest.raises(KeyError, match="Unknown task 'clasification'.*Did you mean 'classification'"):
        classifier(task='clasification')
    with pytest.raises(TypeError, match='unknown keys'):
        classifier(task=dict(type='classification', smoothing=0.1))
    built = ClassificationTask(label_smoothing=0.2)
    assert classifier(task=built).task is built
    with pytest.raises(TypeError, match='set them on the task'):
        classifier(task=built, label_smoothing=0.1)


# ---------------------------------------------------------------------------------------------- a task of one's own
class MeanSquaredLogits(BaseTask):
    """Regression on every output: the target of sample i is its label repeated (a test task)."""
    output = 'logits'

    def __init__(self, scale=1.0):
        self.scale = scale

    def targets(self, data_samples):
        values = torch.stack([sample.gt_score for sample in data_samples])
        return values, None

    def loss(self, model, output, labels, soft_labels):
        return {'loss_mse': F.mse_loss(output, labels * self.scale)}

    def predict(self, model, inputs, data_samples=None):
        data_samples = data_samples or [DataSample() for _ in range(inputs.shape[0])]
        for sample, value in zip(data_samples, model(inputs)):
            sample.set_field(value, 'pred_value')
        return data_samples


@pytest.fixture
def registered_task():
    TASKS.register_module(name='test_mse_regression', module=MeanSquaredLogits, force=True)
    yield 'test_mse_regression'
    TASKS.module_dict.pop('test_mse_regression')


def test_a_task_of_ones_own_trains_and_predicts_through_distill_model(registered_task):
    torch.manual_seed(0)
    model = DistillModel(student=TINY, teachers=dict(t=dict(model=TINY)), input_size=(3, 16, 16),
                         distillers=[dict(type='kd', temperature=2.0)],
                         task=dict(type=registered_task, scale=2.0), task_loss_weight=0.5).train()
    inputs = torch.randn(2, 3, 16, 16)
    samples = [DataSample().set_gt_score(torch.full((10,), float(k))) for k in (1, 2)]
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_mse', 'loss_kd'}
    target = torch.stack([torch.full((10,), 2.0), torch.full((10,), 4.0)])
    torch.testing.assert_close(losses['loss_mse'], 0.5 * F.mse_loss(model.student(inputs), target))
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.student.parameters())
    with torch.no_grad():
        [sample, _] = model.eval().predict(inputs)
        torch.testing.assert_close(sample.pred_value, model.student(inputs)[0])
