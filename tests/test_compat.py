"""The two mmengine breakages on torch >= 2.6 (environment.md) and kdzoo's fixes for them."""
import os
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

from kdzoo.tools_support import distributed_teardown
from kdzoo.utils.compat import load_from_local as kdzoo_load_from_local
from run_helpers import QUICKSTART, ROOT, free_port, random_vit_teacher, random_weights, run_tool, tiny_config


def make_runner(config, work_dir, **overrides):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(overrides)
    return Runner.from_cfg(cfg)


@pytest.fixture(scope='module')
def trained_once(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume')
    config = tiny_config(tmp, 'student_only', train_items=64, val_items=50, epochs=2, batch_size=32)
    make_runner(config, tmp / 'run', **{'train_cfg.max_epochs': 1}).train()
    return config, tmp


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(trained_once):
    config, tmp = trained_once
    runner = make_runner(config, tmp / 'run', resume=True)
    runner.train()
    assert runner.epoch == 2 and runner.iter == 4   # 1 epoch restored + 1 trained, 2 iterations each


@pytest.mark.slow
def test_load_from_reads_a_runner_checkpoint(trained_once):
    config, tmp = trained_once
    runner = make_runner(config, tmp / 'loaded', load_from=str(tmp / 'run' / 'epoch_1.pth'))
    runner.train()
    saved = torch.load(tmp / 'run' / 'epoch_1.pth', weights_only=False)['state_dict']
    assert saved.keys() == runner.model.state_dict().keys()


@pytest.mark.slow
def test_resume_fails_without_the_fix(trained_once):
    """mmengine's own loader calls torch.load with the new weights_only=True default and is refused."""
    config, tmp = trained_once
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local)
    try:
        with pytest.raises(pickle.UnpicklingError):
            make_runner(config, tmp / 'unfixed', resume=True,
                        load_from=str(tmp / 'run' / 'epoch_1.pth')).train()
    finally:
        CheckpointLoader.register_scheme(prefixes='', force=True)(kdzoo_load_from_local)


SINGLE_RANK_ENV = dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT='29531')


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the breakage only exists on machines without a GPU')
def test_mmengine_cpu_distributed_init_fails_without_the_fix():
    code = "from mmengine.dist import init_dist; init_dist('pytorch', backend='gloo'); print('initialised')"
    rc, out = run_tool('-c', code, env=SINGLE_RANK_ENV, timeout=120)
    assert rc != 0 and 'initialised' not in out
    code = ("from kdzoo.utils.compat import init_cpu_distributed; import torch.distributed as d; "
            "init_cpu_distributed('pytorch'); print('backend', d.get_backend())")
    rc, out = run_tool('-c', code, env=SINGLE_RANK_ENV, timeout=120)
    assert rc == 0 and 'backend gloo' in out, out


@pytest.fixture
def fake_process_group(monkeypatch):
    """torch.distributed as seen by distributed_teardown, recording what it is asked to do."""
    import torch.distributed as dist
    calls, state = [], {'initialised': True}
    monkeypatch.setattr(dist, 'is_initialized', lambda: state['initialised'])
    monkeypatch.setattr(dist, 'barrier', lambda: calls.append('barrier'))

    def destroy():
        calls.append('destroy')
        state['initialised'] = False
    monkeypatch.setattr(dist, 'destroy_process_group', destroy)
    return calls


def test_teardown_waits_for_every_rank_after_a_clean_run(fake_process_group):
    with distributed_teardown():
        pass
    assert fake_process_group == ['barrier', 'destroy']


def test_teardown_skips_the_barrier_after_an_error(fake_process_group):
    """A rank that failed must not wait for ranks that may never arrive; the error still propagates."""
    with pytest.raises(RuntimeError, match='boom'):
        with distributed_teardown():
            raise RuntimeError('boom')
    assert fake_process_group == ['destroy']


ALL_LOGIT_AND_FEATURE_DISTILLERS = ("distillers=[dict(type='kd'), dict(type='dkd'), dict(type='fitnet'), "
                                    "dict(type='ofa'), dict(type='dist'), dict(type='rkd')]")


@pytest.mark.dist
@pytest.mark.parametrize('method,distillers,terms', [
    ('kd', ALL_LOGIT_AND_FEATURE_DISTILLERS,
     ('loss_kd', 'loss_dkd', 'loss_fitnet_stage4', 'loss_ofa_stage1', 'loss_dist_inter', 'loss_rkd_angle')),
    ('cakd', None, ('loss_cakd', 'discriminator')),
    ('civt', None, ('loss_civt_conv', 'loss_civt_inv')),
    ('fofa', None, ('loss_fofa',)),
])
def test_two_process_cpu_training_with_torchrun(tmp_path, method, distillers, terms):
    """DistillModel under DistillDataParallel on 2 CPU processes, for every distiller that has landed."""
    if method == 'civt':
        base = Config.fromfile(os.path.join(QUICKSTART, 'civt.py'))
        checkpoints = {name: random_weights(base[f'{name}_teacher'], str(tmp_path / f'{name}.safetensors'))
                       for name in ('cnn', 'rednet')}
        model_line = ("model = dict(teachers=dict(" + ', '.join(
            f"{name}=dict(checkpoint={path!r})" for name, path in checkpoints.items()) + "))\n")
    else:
        teacher = random_vit_teacher(str(tmp_path / 'teacher.safetensors'))
        model_line = f"model = dict(teachers=dict(vit=dict(checkpoint={teacher!r}))"
        model_line += f", {distillers})\n" if distillers else ")\n"
    config = tiny_config(tmp_path, method, train_items=128, val_items=50, batch_size=16, extra=model_line)
    work_dir = tmp_path / 'ddp'
    rc, out = run_tool('-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
                       os.path.join(ROOT, 'tools', 'train.py'), config, '--launcher', 'pytorch',
                       '--work-dir', str(work_dir), timeout=500)
    assert rc == 0, out[-3000:]
    assert 'DistillDataParallel' in next(work_dir.rglob('*.log')).read_text()  # the config dump is in the log file
    assert (work_dir / 'epoch_1.pth').is_file()
    assert 'kdzoo summary' in out
    for term in terms:
        assert term in out, term
