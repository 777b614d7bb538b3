"""``--amp`` on a CPU (bf16 autocast) and the CPU thread choice of the tools."""
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from kdzoo.engine.amp import enable_amp
from kdzoo.utils.threads import configure_cpu_threads, cpu_thread_count
from run_helpers import random_vit_teacher, run_tool, tiny_config


def amp_config(**wrapper):
    return Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1), **wrapper)))


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path; the GPU path is mmengine\'s own')
def test_amp_on_cpu_is_bf16_autocast_without_loss_scaling():
    cfg = amp_config(loss_scale='dynamic')
    message = enable_amp(cfg)
    assert 'bfloat16 autocast' in message
    assert cfg.optim_wrapper.type == 'kdzoo.CpuBf16OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    layer = nn.Linear(4, 3)
    wrapper = build_optim_wrapper(layer, cfg.optim_wrapper)
    before = layer.weight.detach().clone()
    with wrapper.optim_context(layer):
        output = layer(torch.randn(2, 4))
    assert output.dtype == torch.bfloat16
    wrapper.update_params(output.float().pow(2).mean())
    assert layer.weight.dtype == torch.float32 and not torch.equal(layer.weight, before)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_train_tool_with_amp_trains_on_cpu(tmp_path):
    """Before: mmengine's AmpOptimWrapper died with a bare AssertionError on a CPU."""
    config = tiny_config(tmp_path, 'kd', teacher=random_vit_teacher(str(tmp_path / 'vit.safetensors')),
                         train_items=64, val_items=32)
    rc, out = run_tool('tools/train.py', config, '--amp', '--work-dir', str(tmp_path / 'run'),
                       env=dict(OMP_NUM_THREADS=''))
    assert rc == 0, out[-3000:]
    assert 'bfloat16 autocast' in out and 'CPU threads:' in out and 'set OMP_NUM_THREADS' in out
    assert (tmp_path / 'run' / 'epoch_1.pth').is_file()
    assert 'the full config: see' in out and 'Config:' not in out  # the console header stays short


@pytest.mark.parametrize('cores,processes,load,expected', [
    (2, 1, 0.0, 2),   # idle machine: every core
    (2, 1, 9.0, 1),   # busy machine: one thread, never zero
    (16, 2, 0.0, 8),  # two torchrun processes share the cores
    (16, 1, 10.2, 6),
])
def test_thread_count_follows_idle_cores_and_process_share(cores, processes, load, expected):
    assert cpu_thread_count(cores, processes, load) == expected


def test_explicit_omp_num_threads_is_respected(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    threads = torch.get_num_threads()
    assert 'from the environment' in configure_cpu_threads()
    assert torch.get_num_threads() == threads


def test_thread_choice_is_applied_and_says_how_to_override(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    threads = torch.get_num_threads()
    try:
        message = configure_cpu_threads()
        assert 'OMP_NUM_THREADS' in message
        assert f'CPU threads: {torch.get_num_threads()} ' in message
    finally:
        torch.set_num_threads(threads)
