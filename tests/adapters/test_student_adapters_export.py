"""Adapters on the student are part of its forward: evaluation keeps them and export writes them."""
import torch
import torch.nn as nn
from mmengine.config import Config

from kdzoo.adapters import BaseAdapter
from kdzoo.registry import ADAPTERS, MODELS
from kdzoo.tools_support import export_student, load_student, student_only_config
from tiny_models import TINY_CNN as NET


@ADAPTERS.register_module(force=True)
class OutputBias(BaseAdapter):
    def __init__(self, target='student'):
        super().__init__(target)
        self.bias = nn.Parameter(torch.zeros(10))

    def attach(self, model):
        self._handles.append(model.register_forward_hook(lambda m, args, out: out + self.bias))


def config():
    return Config(dict(model=dict(
        type='DistillModel', student=NET, teachers=dict(t=NET), input_size=(1, 16, 16),
        distillers=[dict(type='kd')], adapters=[dict(type='OutputBias', target='t'), dict(type='OutputBias')])))


def test_evaluation_keeps_student_adapters_with_their_trained_weights(tmp_path):
    cfg = config()
    assert [a.get('target', 'student') for a in student_only_config(cfg).adapters] == ['student']
    trained = MODELS.build(cfg.model)
    trained.adapters[1].bias.data.fill_(3.0)
    path = str(tmp_path / 'run.pth')
    torch.save({'state_dict': trained.state_dict()}, path)
    model = load_student(cfg, path)
    assert len(model.adapters) == 1 and torch.equal(model.adapters[0].bias, torch.full((10,), 3.0))
    x = torch.randn(2, 1, 16, 16)
    assert torch.allclose(model.eval().student(x), trained.eval().student(x))

    export_student(model, str(tmp_path / 'student.safetensors'))
    from safetensors.torch import load_file
    assert torch.equal(load_file(str(tmp_path / 'student.adapters.safetensors'))['0.bias'], torch.full((10,), 3.0))
    assert not any('bias' == k.split('.')[-1] and k.startswith('0.') for k in load_file(
        str(tmp_path / 'student.safetensors')))
