"""Configuration mistakes fail at build time with the key path, the accepted keys and the fix."""
import pytest

from kdzoo.models import DistillModel
from kdzoo.registry import DISTILLERS, accepted_arguments

STUDENT = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
               channels=(8, 16, 16, 16), stem_width=8)


def build(**kwargs):
    return DistillModel(student=STUDENT, teachers=dict(t=STUDENT), input_size=(1, 16, 16), **kwargs)


def test_unknown_distiller_key_lists_accepted_keys_with_path():
    with pytest.raises(TypeError) as error:
        build(distillers=[dict(type='kd'), dict(type='dkd', betta=2.0)])
    message = str(error.value)
    assert message.startswith('model.distillers[1]: ')
    assert "unknown keys ['betta']" in message and "did you mean 'beta'" in message
    assert 'Accepted: alpha, beta, temperature, loss_weight, schedule, teacher' in message


@pytest.mark.parametrize('cfg,expected', [
    (dict(type='kd', temperature=-1.0), 'model.distillers[0]: kd: temperature must be > 0'),
    (dict(type='kd', loss_weight=-0.5), 'model.distillers[0]: KD: loss_weight must be >= 0 and finite, got -0.5'),
    (dict(type='kd', loss_weight='1'), "model.distillers[0]: KD: loss_weight must be a number >= 0, got '1'"),
    (dict(type='dkd', beta=-2), 'dkd: beta must be >= 0'),
    (dict(type='kd', temperature='hot'), "model.distillers[0]: kd: temperature must be a number > 0, got 'hot'"),
    (dict(type='kd', temperature=float('inf')), 'kd: temperature must be > 0 and finite, got inf'),
    (dict(type='dist', gamma=None), 'dist: gamma must be a number >= 0, got None'),
    (dict(type='kd', schedule=dict(ramp_start=5)), 'needs both ramp_start and ramp_end'),
])
def test_out_of_range_values_are_rejected(cfg, expected):
    with pytest.raises((ValueError, TypeError), match=expected.replace('[', '\\[').replace(']', '\\]')):
        build(distillers=[cfg])


def test_unknown_model_key_names_the_model_path():
    with pytest.raises(TypeError, match="model.teachers.t: .*unexpected keyword argument 'img_sise'"):
        DistillModel(student=STUDENT, teachers=dict(t=dict(STUDENT, img_sise=3)), input_size=(1, 16, 16))


def test_accepted_arguments_follow_kwargs_to_the_parent_only_when_forwarded():
    assert accepted_arguments(DISTILLERS.get('kd')) == ['temperature', 'loss_weight', 'schedule', 'teacher']
    from kdzoo.registry import MODELS
    assert accepted_arguments(MODELS.get('TimmClassifier')) is None   # **kwargs go to timm, which checks


def test_a_misspelt_dataset_or_transform_argument_is_refused_when_the_config_loads(tmp_path):
    """Before any model or teacher is built, with where it is, the key and the closest accepted one."""
    from kdzoo.tools_support import load_config
    with pytest.raises(TypeError, match=r"train_dataloader\.dataset: dataset 'EmbeddedMNIST' got unknown keys "
                                        r"\['splt'\] \('splt': did you mean 'split'\?\)"):
        load_config('configs/quickstart/kd.py', {'train_dataloader.dataset.splt': 'train'})
    config = tmp_path / 'wrapped.py'
    config.write_text(
        "_base_ = 'kdzoo::quickstart/kd.py'\n"
        "train_dataloader = dict(dataset=dict(_delete_=True, type='kdzoo.ReplayDataset', views=2, dataset=dict(\n"
        "    type='EmbeddedMNIST', split='train', pipeline=[dict(type='mmpretrain.PackInputs'),\n"
        "                                                  dict(type='RandomFlip', prob=0.5, directon='vertical')])))\n")
    with pytest.raises(TypeError, match=r"train_dataloader\.dataset\.dataset\.pipeline\[1\]: transform "
                                        r"'RandomFlip' got unknown keys \['directon'\] \('directon': did you mean "
                                        r"'direction'\?\)"):
        load_config(str(config))
    config.write_text(config.read_text().replace("directon", "direction"))
    assert load_config(str(config)).train_dataloader.dataset.views == 2
