"""DistillModel: gradient routing, teachers frozen, adapters, schedules, non-finite guard, export."""
import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from kdzoo.adapters import BaseAdapter
from kdzoo.models import DistillModel
from kdzoo.registry import ADAPTERS, DISTILLERS
from tiny_models import PREPROCESSOR, TINY_CNN as CNN, TINY_VIT as VIT, assert_gradient_routing, batch_of


def make_model(distillers=(dict(type='kd', temperature=2.0),), adapters=(), student=CNN, **kwargs):
    return DistillModel(student=student, teachers=dict(vit=VIT), distillers=list(distillers), adapters=list(adapters),
                        input_size=(1, 16, 16), data_preprocessor=PREPROCESSOR, **kwargs)


def fake_batch(n=4):
    return torch.randn(n, 1, 16, 16), batch_of(torch.arange(n) % 10)


@ADAPTERS.register_module(force=True)
class InputGain(BaseAdapter):
    """A trivial adapter: one learnable gain on the target model's input."""

    def __init__(self, target='vit'):
        super().__init__(target)
        self.gain = nn.Parameter(torch.tensor(1.5))

    def attach(self, model):
        self._handles.append(model.register_forward_pre_hook(lambda m, args: (args[0] * self.gain,)))


# timm zero-initialises each residual block's last BN, which leaves the convs before it without gradient in
# a first step: the routing checks use a student without that.
ROUTING_STUDENT = dict(CNN, zero_init_last=False)


def test_gradients_reach_student_only_and_teacher_is_unchanged():
    model = make_model(student=ROUTING_STUDENT).train()
    losses = model.loss(*fake_batch())
    assert set(losses) == {'loss_cls', 'loss_kd'}
    assert_gradient_routing(model, losses, connectors=False)


def test_teachers_stay_in_eval_and_run_without_autograd():
    model = make_model().train()
    assert model.student.training and not any(m.training for m in model.teachers.modules())
    features = model.run_teachers(torch.randn(2, 1, 16, 16))
    assert not features['vit']['logits'].data.requires_grad


def test_trainable_teacher_adapter_gets_gradients_teacher_does_not():
    model = make_model(adapters=[dict(type='InputGain', target='vit')], student=ROUTING_STUDENT).train()
    assert model.teachers_need_grad
    assert_gradient_routing(model, model.loss(*fake_batch()), connectors=True)
    assert model.adapters[0].gain.item() != 1.5
    # the adapter keeps the teacher's own keys: its state dict has no adapter entries
    assert not any('gain' in k for k in model.teachers.state_dict())


def test_adapter_with_unknown_target_is_rejected():
    with pytest.raises(KeyError, match="targets 'nope'.*'student', 'vit'"):
        make_model(adapters=[dict(type='InputGain', target='nope')])


def test_predict_uses_student_only():
    model = make_model().eval()
    inputs, samples = fake_batch()
    out = model.predict(inputs, samples)
    expected = model.student(inputs).softmax(1)
    assert torch.allclose(torch.stack([s.pred_score for s in out]), expected)
    model.teachers['vit'].forward = None  # any teacher call would now fail
    model.predict(inputs, samples)


def test_schedule_follows_message_hub_epoch():
    model = make_model(distillers=[dict(type='kd', schedule=dict(warmup=4))])
    hub = MessageHub.get_current_instance()
    inputs, samples = fake_batch()
    hub.update_info('epoch', 0)
    first = model.loss(inputs, samples)['loss_kd']
    hub.update_info('epoch', 3)
    full = model.loss(inputs, samples)['loss_kd']
    hub.update_info('epoch', 0)
    assert first.item() == pytest.approx(full.item() / 4, rel=1e-5)


def test_weight_schedule_factors():
    from kdzoo.engine import WeightSchedule
    ramp = WeightSchedule(ramp_start=25, ramp_end=35)
    assert [ramp.factor(e) for e in (1, 25, 30, 35, 50)] == [0, 0, 0.5, 1, 1]
    assert WeightSchedule(warmup=20).factor(1) == pytest.approx(1 / 20)
    assert WeightSchedule(stop=5).factor(4) == 1 and WeightSchedule(stop=5).factor(5) == 0
    with pytest.raises(TypeError, match="unknown schedule keys \\['warm_up'\\]"):
        DISTILLERS.build(dict(type='kd', schedule=dict(warm_up=3)))


@DISTILLERS.register_module(force=True)
class ExplodingDistiller(DISTILLERS.get('kd')):
    def compute_losses(self, student, teacher, labels):
        return {'loss_boom': student['logits'].data.sum() * float('nan')}


@pytest.mark.parametrize('action', ['raise', 'skip'])
def test_nonfinite_loss_names_term_and_iteration_and_keeps_weights(action):
    model = make_model(distillers=[dict(type='ExplodingDistiller')], on_nonfinite=action).train()
    MessageHub.get_current_instance().update_info('iter', 6)
    before = {k: v.detach().clone() for k, v in model.student.named_parameters()}
    wrapper = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
    inputs, samples = fake_batch()
    data = dict(inputs=[x for x in inputs], data_samples=samples)
    if action == 'raise':
        with pytest.raises(FloatingPointError, match='iteration 7: loss_boom=nan.*loss computation itself'):
            model.train_step(data, wrapper)
    else:
        model.train_step(data, wrapper)
    assert all(torch.equal(v, before[k]) for k, v in model.student.named_parameters())
    MessageHub.get_current_instance().update_info('iter', 0)


def test_student_state_dict_is_the_bare_student():
    model = make_model()
    state = model.student_state_dict()
    import timm
    bare = timm.create_model('resnet10t', in_chans=1, num_classes=10, channels=(8, 16, 16, 16), stem_width=8)
    bare.load_state_dict(state)  # strict: same keys, no wrapper prefix, nothing else
    assert not any(k.startswith(('teachers', 'distillers', 'adapters')) for k in state)


def test_unknown_names_list_choices():
    with pytest.raises(KeyError, match="Unknown distiller 'dkdd'.*Did you mean 'dkd'"):
        make_model(distillers=[dict(type='dkdd')])
    with pytest.raises(KeyError, match="Unknown timm model 'resnet181'.*Did you mean"):
        DistillModel(student=dict(type='TimmClassifier', model_name='resnet181'))
    with pytest.raises(KeyError, match="Unknown model 'TimClassifier'.*Did you mean 'TimmClassifier'"):
        DistillModel(student=dict(type='TimClassifier', model_name='resnet18'))
    with pytest.raises(ValueError, match='on_nonfinite'):
        make_model(on_nonfinite='ignore')


def test_two_teachers_need_an_explicit_teacher_name():
    with pytest.raises(ValueError, match="set teacher= to one of \\['a', 'b'\\]"):
        DistillModel(student=CNN, teachers=dict(a=VIT, b=VIT), distillers=[dict(type='kd')],
                     input_size=(1, 16, 16), data_preprocessor=PREPROCESSOR)
    model = DistillModel(student=CNN, teachers=dict(a=VIT, b=VIT), input_size=(1, 16, 16),
                         distillers=[dict(type='kd', teacher='a'), dict(type='dkd', teacher='b')],
                         data_preprocessor=PREPROCESSOR)
    assert set(model.loss(*fake_batch())) == {'loss_cls', 'loss_kd', 'loss_dkd'}


def test_nonfinite_guard_names_the_module_whose_output_went_nonfinite():
    model = make_model().train()
    model.student.model.layer2[0].conv1.weight.data.fill_(float('inf'))
    wrapper = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
    inputs, samples = fake_batch()
    with pytest.raises(FloatingPointError, match='first non-finite module output: student.model.layer2.0.conv1'):
        model.train_step(dict(inputs=[x for x in inputs], data_samples=samples), wrapper)
