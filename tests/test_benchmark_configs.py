"""The shipped benchmark specs validate, and every cell's config builds and trains a step (random teachers)."""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from kdzoo.bench import load_spec
from kdzoo.registry import MODELS
from run_helpers import ROOT
from tiny_models import batch_of

SPECS = ('mnist_hetero.yaml', 'orl_face.yaml')


def spec_cells(name):
    cwd = os.getcwd()
    os.chdir(ROOT)          # pair folders are relative to the repository root, as the tool runs them
    try:
        spec = load_spec(osp.join('configs', 'benchmarks', name))
    finally:
        os.chdir(cwd)
    return spec, [(pair.name, method, osp.join(ROOT, pair.dir, f'{method}.py'))
                  for pair in spec.pairs.values() for method in pair.methods]


@pytest.mark.parametrize('name', SPECS)
def test_spec_validates_and_every_method_has_its_config(name):
    spec, cells = spec_cells(name)
    assert len(spec.seeds) == 3
    assert all(osp.isfile(path) for _, _, path in cells)


MNIST_CELLS = spec_cells('mnist_hetero.yaml')[1]


@pytest.mark.parametrize('pair,method,path', MNIST_CELLS, ids=[f'{p}/{m}' for p, m, _ in MNIST_CELLS])
def test_mnist_benchmark_config_trains_a_step(pair, method, path):
    DefaultScope.get_instance(f'bench-{pair}-{method}', scope_name='kdzoo')
    cfg = Config.fromfile(path)
    assert cfg.train_dataloader.dataset.num_items == 1000          # the limited-data setting
    model_cfg = copy.deepcopy(cfg.model)
    for teacher in model_cfg.teachers.values():
        teacher['checkpoint'] = None
    model = MODELS.build(model_cfg).train()
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    wrapper_cfg.pop('type', None)
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    losses = model.train_step(dict(inputs=torch.randn(4, 1, 32, 32), data_samples=batch_of(range(4))), wrapper)
    assert torch.isfinite(losses['loss'])
    if method == 'student':
        assert set(losses) == {'loss', 'loss_cls'}
    else:
        assert any(key.startswith(f'loss_{method}') for key in losses), sorted(losses)
