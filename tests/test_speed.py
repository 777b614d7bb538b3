"""tools/speed.py: the memory tracker, the pair check, the teacher fast-path options and one real run."""
import os
import sys

import pytest
import torch
from mmengine.config import Config

from run_helpers import QUICKSTART, ROOT
from tiny_models import batch_of

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))
import speed  # noqa: E402

from kdzoo.registry import MODELS  # noqa: E402


def test_tracker_peak_is_the_largest_set_of_tensors_alive_at_once():
    with speed.TensorBytesPeak() as tracker:
        a = torch.empty(1000, dtype=torch.float32)       # 4,000 bytes
        b = torch.empty(500, dtype=torch.float64)        # 4,000 bytes -> 8,000 alive
        del a, b
        c = torch.empty(1500, dtype=torch.float32)       # 6,000 bytes alone
        view = c[:10]                                    # a view shares c's storage: no new bytes
    assert tracker.peak == 8000
    assert tracker.current == 6000
    del c, view


def test_tracker_sees_backward_allocations():
    layer = torch.nn.Linear(300, 200, bias=False)
    inputs = torch.randn(8, 300)
    with speed.TensorBytesPeak() as tracker:
        layer(inputs).sum().backward()
    assert tracker.current >= 300 * 200 * 4      # the weight's gradient, created by backward, is alive


def test_configs_of_different_pairs_are_refused():
    kd = speed.load_config(os.path.join(QUICKSTART, 'kd.py'))
    civt = speed.load_config(os.path.join(QUICKSTART, 'civt.py'))
    with pytest.raises(ValueError, match='different teacher-student pairs'):
        speed.check_same_pair({'kd.py': kd, 'civt.py': civt})
    student_only = speed.load_config(os.path.join(QUICKSTART, 'student_only.py'))
    with pytest.raises(ValueError, match='no teachers'):
        speed.check_same_pair({'student_only.py': student_only})


@pytest.mark.parametrize('variant', ['bf16', 'channels-last'])
def test_fast_path_variants_give_the_losses_of_the_plain_teacher(variant):
    """bf16 autocast changes the teacher's logits by bf16 rounding only; channels-last changes nothing."""
    cfg = speed.load_config(os.path.join(QUICKSTART, 'kd.py'))
    torch.manual_seed(0)
    plain = speed.build_model(cfg, 'fp32', torch.device('cpu'))
    fast = speed.build_model(cfg, variant, torch.device('cpu'))
    fast.load_state_dict(plain.state_dict())
    inputs, samples = torch.randn(8, 1, 32, 32), batch_of(range(8))
    plain_losses = plain.loss(inputs, samples)
    fast_losses = fast.loss(inputs, samples)
    tolerance = 0.05 if variant == 'bf16' else 1e-5
    assert fast_losses['loss_kd'].dtype == torch.float32
    assert torch.allclose(plain_losses['loss_kd'], fast_losses['loss_kd'], rtol=tolerance, atol=1e-4)


def test_teacher_features_leave_inference_mode_as_ordinary_tensors():
    cfg = Config.fromfile(os.path.join(QUICKSTART, 'fitnet.py'))
    cfg.model.teachers.vit.checkpoint = None
    model = MODELS.build(cfg.model)
    features = model.run_teachers(torch.randn(2, 1, 32, 32))
    for taps in features.values():
        for feature in taps.values():
            assert not feature.data.is_inference() and not feature.data.requires_grad


@pytest.mark.slow
def test_speed_tool_reports_ratios_and_memory(capsys):
    configs = [os.path.join(QUICKSTART, name) for name in ('kd.py', 'cakd.py')]
    medians, floor, peaks = speed.main(configs + ['--batch-size', '8', '--repeats', '2', '--warmup', '1',
                                                  '--variants', 'as-configured', 'bf16'])
    out = capsys.readouterr().out
    for row in ('(a) teacher forward', '(b) student step', '(c) kd', '(c) kd [bf16]', '(c) cakd'):
        assert row in out and row in medians
    assert floor == pytest.approx(medians['(a) teacher forward'] + medians['(b) student step'])
    assert peaks['(c) cakd'] > peaks['(b) student step'] > 0
    assert '92,393' in out      # cakd's projectors and discriminator: its extra trainable parameters


def test_a_config_with_a_discriminator_optimiser_can_come_first():
    """The student step (b) takes the student's wrapper out of CAKD's OptimWrapperDict."""
    configs = [os.path.join(QUICKSTART, name) for name in ('cakd.py', 'kd.py')]
    medians, _, _ = speed.main(configs + ['--batch-size', '4', '--repeats', '1', '--warmup', '0', '--no-memory'])
    assert medians['(b) student step'] > 0 and medians['(c) cakd'] > 0


def test_algorithmic_floor_of_a_prompted_teacher_method(capsys):
    """FOFA's floor: its prompted teacher forward + backward (p), the plain teacher forward (a), the student (b)."""
    configs = [os.path.join(QUICKSTART, name) for name in ('kd.py', 'fofa.py')]
    medians, floor, _ = speed.main(configs + ['--batch-size', '4', '--repeats', '2', '--warmup', '1', '--no-memory'])
    out = capsys.readouterr().out
    assert '(p) fofa prompted teacher' in medians and not any(label.startswith('(p) kd') for label in medians)
    fofa_floor = sum(medians[k] for k in ('(p) fofa prompted teacher', '(a) teacher forward', '(b) student step'))
    fofa_row = next(line for line in out.splitlines() if line.startswith('(c) fofa'))
    assert f'{fofa_floor * 1e3:.1f}' in fofa_row.split() and f"{medians['(c) fofa'] / fofa_floor:.3f}" in fofa_row
    kd_row = next(line for line in out.splitlines() if line.startswith('(c) kd'))
    assert f'{floor * 1e3:.1f}' in kd_row.split()          # a frozen teacher's method: the common floor


def test_prompted_pass_trains_nothing_and_reaches_every_adapter_parameter():
    cfg = speed.load_config(os.path.join(QUICKSTART, 'fofa.py'))
    torch.manual_seed(0)
    model = speed.build_model(cfg, 'as-configured', torch.device('cpu'))
    inputs, samples = torch.randn(4, 1, 32, 32), batch_of(range(4))
    model.loss(inputs, samples)                        # AFP gets its feedback
    seen = []
    for p in model.adapters[0].parameters():
        p.register_hook(lambda grad: seen.append(grad))
    speed.prompted_teacher_pass(model, inputs)()
    assert len(seen) == sum(1 for _ in model.adapters[0].parameters())
    assert all(p.grad is None for p in model.parameters())


def student_inputs_of_floor_and_step(cfg, batch_size):
    """What the student's forward receives in the (b) student step and in the (c) kd step."""
    torch.manual_seed(0)
    model = speed.build_model(cfg, 'as-configured', torch.device('cpu'))
    seen = []
    model.student.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    measurements = speed.make_measurements({('kd', 'as-configured'): model}, {'kd': cfg}, batch_size,
                                           torch.device('cpu'))
    measurements['(b) student step']()
    measurements['(c) kd']()
    return seen[-2], seen[-1]


@pytest.mark.slow
def test_floor_and_steps_see_the_same_preprocessed_training_batch(capsys):
    """(b) and (c) must time the same inputs: a floor measured on other values is not a floor."""
    cfg = speed.load_config(os.path.join(QUICKSTART, 'kd.py'))
    floor_inputs, step_inputs = student_inputs_of_floor_and_step(cfg, 8)
    assert 'first training batch of kd (8 images)' in capsys.readouterr().out
    assert floor_inputs.shape == (8, 1, 32, 32)
    assert torch.equal(floor_inputs, step_inputs)
    pixels = torch.stack(speed.first_training_batch(cfg, 8)['inputs']).float()
    assert torch.allclose(floor_inputs, (pixels - 33.3) / 78.6, atol=1e-5)     # real digits, normalised


def test_missing_training_data_falls_back_to_random_pixels(capsys, tmp_path):
    cfg = speed.load_config(os.path.join(QUICKSTART, 'kd.py'))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'nowhere')
    assert speed.first_training_batch(cfg, 4) is None
    assert 'no training data' in capsys.readouterr().out
    floor_inputs, step_inputs = student_inputs_of_floor_and_step(cfg, 4)
    assert 'random pixel values' in capsys.readouterr().out
    assert floor_inputs.shape == (4, 1, 32, 32) and torch.equal(floor_inputs, step_inputs)
    assert floor_inputs.min() < 0 < floor_inputs.max()             # normalised pixels, not raw 0-255 values


def test_cache_variant_reads_a_filled_cache_and_its_floor_is_the_student_step(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(speed.tempfile, 'tempdir', str(tmp_path))
    configs = [os.path.join(QUICKSTART, 'kd.py')]
    medians, _, _ = speed.main(configs + ['--batch-size', '4', '--repeats', '2', '--warmup', '1', '--no-memory',
                                          '--variants', 'as-configured', 'cache'])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith('(c) kd [cache]'))
    assert f"{medians['(b) student step'] * 1e3:.1f}" in row.split()
    assert not os.listdir(tmp_path)       # the temporary cache is removed afterwards


@pytest.mark.slow
def test_connector_cost_times_the_distiller_alone_beside_its_step():
    import importlib.util
    spec = importlib.util.spec_from_file_location('connector_cost', os.path.join(ROOT, 'tools', 'connector_cost.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    medians = tool.main([os.path.join(ROOT, 'configs', 'quickstart', 'fitnet.py'), '--batch-size', '8',
                         '--repeats', '2', '--warmup', '1'])
    assert set(medians) == {'(c) fitnet step', 'fitnet: distiller alone fwd+bwd', '(a) teacher forward',
                            '(b) student step'}
    assert all(value > 0 for value in medians.values())
    assert medians['fitnet: distiller alone fwd+bwd'] < medians['(c) fitnet step']
