"""Loading weights a user supplies: formats, key prefixes, strict errors, refusal of code-carrying pickles."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from kdzoo.models import DistillModel, TimmClassifier, load_weights

CFG = dict(model_name='resnet10t', in_chans=1, num_classes=10, channels=(8, 16, 16, 16), stem_width=8)


def bare_state():
    return TimmClassifier(**CFG).model.state_dict()


@pytest.mark.parametrize('layout', ['bare', 'wrapper', 'mmengine', 'distill_run', 'safetensors'])
def test_formats_and_prefixes(tmp_path, layout):
    state = bare_state()
    path = str(tmp_path / ('w.safetensors' if layout == 'safetensors' else 'w.pth'))
    if layout == 'bare':
        torch.save(state, path)
    elif layout == 'wrapper':
        torch.save({f'model.{k}': v for k, v in state.items()}, path)
    elif layout == 'mmengine':
        torch.save({'meta': {'epoch': 3}, 'state_dict': {f'model.{k}': v for k, v in state.items()}}, path)
    elif layout == 'distill_run':
        torch.save({'state_dict': {f'student.model.{k}': v for k, v in state.items()}}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    model = TimmClassifier(**CFG)
    load_weights(model, path)
    for key, value in model.model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_mismatch_lists_keys_and_loads_nothing(tmp_path):
    state = bare_state()
    del state['fc.weight']
    state['extra.weight'] = torch.zeros(1)
    state['conv1.0.weight'] = torch.zeros(1, 1, 1, 1)
    path = str(tmp_path / 'bad.pth')
    torch.save(state, path)
    model = TimmClassifier(**CFG)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(KeyError) as error:
        load_weights(model, path)
    message = str(error.value)
    assert 'missing keys (1): model.fc.weight' in message
    assert 'unexpected keys (1): model.extra.weight' in message
    assert 'model.conv1.0.weight: checkpoint (1, 1, 1, 1) vs model (6, 1, 3, 3)' in message
    assert 'nothing was loaded' in message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


class RunsCode:
    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_pickle_carrying_code_is_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': bare_state(), 'payload': RunsCode()}, path)
    with pytest.raises(pickle.UnpicklingError, match='weights_only=True'):
        load_weights(TimmClassifier(**CFG), path)


def test_teacher_checkpoint_that_does_not_fit_fails_the_build(tmp_path):
    path = str(tmp_path / 'teacher.pth')
    torch.save({'fc.weight': torch.zeros(3, 3)}, path)
    with pytest.raises(KeyError, match='missing keys'):
        DistillModel(student=dict(type='TimmClassifier', **CFG),
                     teachers=dict(t=dict(model=dict(type='TimmClassifier', **CFG), checkpoint=path)),
                     input_size=(1, 16, 16))


def test_missing_file_is_named():
    with pytest.raises(FileNotFoundError, match="'nowhere.pth' does not exist"):
        load_weights(TimmClassifier(**CFG), 'nowhere.pth')
