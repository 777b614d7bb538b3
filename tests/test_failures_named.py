"""Failures name their cause: the model's own error and Ctrl-C are never replaced by a recorder message."""
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn as nn

from run_helpers import ROOT, tiny_config
from test_distill_model import fake_batch, make_model


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'kdzoo_tool_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class InterruptedNet(nn.Module):
    """A student whose forward is interrupted (as by Ctrl-C) once training starts; the build probe passes."""

    def __init__(self, in_chans=1, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(in_chans, num_classes)

    def forward(self, x):
        if self.training:
            raise KeyboardInterrupt
        return self.fc(x.mean((2, 3)))


def test_a_wrong_input_reports_the_models_own_error_not_missing_taps():
    model = make_model().train()
    _, samples = fake_batch()
    with pytest.raises(RuntimeError, match='expected input.* to have 1 channels, but got 3'):
        model.loss(torch.randn(4, 3, 16, 16), samples)
    assert all(recorder._raw is None for recorder in model.recorders.values())
    model.loss(*fake_batch())  # the recorders still work after the failure


def test_ctrl_c_in_a_forward_propagates_as_keyboard_interrupt():
    model = make_model().train()
    model.teachers['vit'].register_forward_pre_hook(lambda module, args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        model.loss(*fake_batch())


def test_ctrl_c_during_training_exits_130_with_one_line(tmp_path, capsys):
    student = dict(_delete_=True, type='ImportedModel', path='test_failures_named:InterruptedNet')
    config = tiny_config(tmp_path, 'student_only', extra=f"model = dict(student={student!r})\n")
    with pytest.raises(SystemExit) as exit_info:
        load_tool('train').main([config, '--work-dir', str(tmp_path / 'w')])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert 'training interrupted (Ctrl-C); exiting with status 130' in err and 'Traceback' not in err


# ------------------------------------------------------------------ class counts checked at build
VIT_100 = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=16, patch_size=4, in_chans=1,
               num_classes=100, embed_dim=32, depth=1, num_heads=2)
CNN_10 = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10, channels=(8, 8, 8, 8),
              stem_width=8)


@pytest.mark.parametrize('distiller,name', [('kd', 'KD'), ('dkd', 'DKD'), ('dist', 'DIST')])
def test_logit_distillers_refuse_different_class_counts_at_build(distiller, name):
    from kdzoo.models import DistillModel
    with pytest.raises(ValueError, match=f"{name}: the student has 10 classes and teacher 'vit' 100; "
                                         "logit distillation needs both to predict the same classes"):
        DistillModel(student=CNN_10, teachers=dict(vit=VIT_100), distillers=[dict(type=distiller)],
                     input_size=(1, 16, 16))


def test_civt_refuses_a_teacher_with_other_classes_at_build():
    from kdzoo.models import DistillModel
    student = dict(VIT_100, num_classes=10)
    with pytest.raises(ValueError, match="civt: the student has 10 classes and inv_teacher 'rednet' 100"):
        DistillModel(student=student, teachers=dict(cnn=CNN_10, rednet=VIT_100), adapters=[dict(type='civt_tokens')],
                     distillers=[dict(type='civt', conv_teacher='cnn', inv_teacher='rednet')], input_size=(1, 16, 16))


# ------------------------------------------------------------------ numbers checked by one validator
@pytest.mark.parametrize('cfg,key', [
    (dict(type='kd'), 'temperature'), (dict(type='dkd'), 'temperature'), (dict(type='dist'), 'temperature'),
    (dict(type='face_kd'), 'temperature'), (dict(type='ofa'), 'temperature'), (dict(type='fofa'), 'temperature'),
    (dict(type='civt'), 'conv_temperature'), (dict(type='urfm'), 'irpe_ratio'), (dict(type='rkd'), 'angle_weight'),
    (dict(type='dkd'), 'alpha'), (dict(type='fofa'), 'reg_weight'), (dict(type='ofa'), 'final_weight'),
])
def test_a_string_where_a_number_belongs_is_a_type_error_naming_the_key(cfg, key):
    from kdzoo.registry import DISTILLERS
    with pytest.raises(TypeError, match=f"{cfg['type']}: {key} must be a number >=? ?0, got 'hot' \\(str\\)"):
        DISTILLERS.build(dict(cfg, **{key: 'hot'}))


def test_no_distiller_compares_a_temperature_by_hand():
    import glob
    for path in glob.glob(osp.join(ROOT, 'kdzoo', 'distillers', '*.py')):
        assert 'must be > 0' not in open(path).read(), f'{path}: use kdzoo.utils.checks.positive'


# ------------------------------------------------------------------ config files and --cfg-options
def test_a_config_syntax_error_names_the_file_and_line(tmp_path):
    from kdzoo.tools_support import load_config
    broken = tmp_path / 'broken.py'
    broken.write_text("model = dict(type='DistillModel')\ntrain_cfg = dict(max_epochs=\n")
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['./broken.py']\n")
    for path in (broken, child):
        with pytest.raises(SyntaxError, match=f"config file {broken}, line 2: '\\(' was never closed") as error:
            load_config(str(path))
        assert error.value.filename == str(broken) and error.value.lineno == 2


def test_an_unknown_top_level_cfg_option_is_refused_by_the_tools(tmp_path):
    config = tiny_config(tmp_path, 'student_only', train_items=64, val_items=20)
    for tool in ('train', 'test'):
        argv = [config] + (['ckpt.pth'] if tool == 'test' else []) + ['--cfg-options', 'totally_unknown_key=3']
        with pytest.raises(ValueError, match="--cfg-options totally_unknown_key=3: the config defines no top-level "
                                             "key 'totally_unknown_key'"):
            load_tool(tool).main(argv + ['--work-dir', str(tmp_path)])
    from kdzoo.tools_support import load_config
    with pytest.raises(ValueError, match="Did you mean 'train_cfg'"):
        load_config(config, {'train_cgf.max_epochs': 2})
    cfg = load_config(config, {'train_cfg.max_epochs': 2, 'sync_bn': 'torch', 'input_size': (1, 32, 32)})
    assert cfg.train_cfg.max_epochs == 2 and cfg.sync_bn == 'torch'   # read by the Runner / defined by the file


# ------------------------------------------------------------------ evaluation and export need no teacher
def test_test_and_export_build_no_teacher_when_its_file_is_absent(tmp_path, capsys):
    from kdzoo.registry import MODELS
    from kdzoo.tools_support import export_student, load_config, student_only_config
    config = tiny_config(tmp_path, 'kd', teacher=tmp_path / 'absent_teacher.safetensors', val_items=20)
    student = MODELS.build(student_only_config(load_config(config)))
    assert not len(student.teachers)
    checkpoint = export_student(student, str(tmp_path / 'student.safetensors'))
    written = load_tool('export').main([config, checkpoint, '--out-dir', str(tmp_path / 'x'), '--no-onnx'])
    assert [osp.basename(p) for p in written] == ['student.safetensors', 'student.pth', 'student.json']
    metrics = load_tool('test').main([config, checkpoint, '--work-dir', str(tmp_path / 't')])
    assert 'accuracy/top1' in metrics


# ------------------------------------------------------------------ input_size that does not fit a model
@pytest.mark.parametrize('input_size,expected,cause', [
    ((3, 16, 16), r"student \(ResNet\) cannot run on model.input_size=\(3, 16, 16\) \(C, H, W\): RuntimeError: .*"
                  r"to have 1 channels, but got 3.* The model expects: its first convolution takes 1 channel",
     RuntimeError),
    ((1, 32, 32), r"teacher 'vit' \(VisionTransformer\) cannot run on model.input_size=\(1, 32, 32\).*"
                  r"its patch embedding takes 16x16 images only", AssertionError),
])
def test_an_input_size_the_model_cannot_take_names_model_size_and_expectation(input_size, expected, cause):
    from kdzoo.models import DistillModel
    with pytest.raises(ValueError, match=expected) as error:
        DistillModel(student=CNN_10, teachers=dict(vit=dict(VIT_100, num_classes=10)),
                     distillers=[dict(type='kd')], input_size=input_size)
    assert isinstance(error.value.__cause__, cause)   # the original error stays chained


# ------------------------------------------------------------------ non-finite values never reach a checkpoint
def test_a_skipped_step_leaves_batchnorm_statistics_as_they_were():
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper
    model = make_model(on_nonfinite='skip').train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wrapper = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
    inputs, samples = fake_batch()
    inputs[0, 0, 3, 3] = float('nan')   # one NaN pixel: the BatchNorm statistics of the forward are NaN
    model.train_step(dict(inputs=list(inputs), data_samples=samples), wrapper)
    after = model.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    model.train_step(dict(inputs=list(fake_batch()[0]), data_samples=samples), wrapper)
    assert not torch.equal(before['student.model.bn1.running_mean'], model.state_dict()['student.model.bn1.running_mean'])
    MessageHub.get_current_instance().update_info('iter', 0)


def test_a_checkpoint_holding_nan_is_refused_before_it_is_written():
    from mmengine.config import Config

    from kdzoo.engine.hooks import FiniteWeightsHook
    model = make_model()
    model.student.model.bn1.running_var[2] = float('nan')
    with pytest.raises(FloatingPointError, match=r"the checkpoint about to be saved holds non-finite values in "
                                                 r"student.model.bn1.running_var; nothing was saved"):
        FiniteWeightsHook().before_save_checkpoint(None, dict(state_dict=model.state_dict()))
    FiniteWeightsHook().before_save_checkpoint(None, dict(state_dict=make_model().state_dict()))
    runtime = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'default_runtime.py'))
    assert runtime.default_hooks.finite_weights.type == 'FiniteWeightsHook'


# ------------------------------------------------------------------ init_cfg=Pretrained in an mmpretrain model
def tiny_mmpretrain(**backbone):
    return dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                                                      in_channels=1, **backbone),
                neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=10, in_channels=64))


def test_a_pretrained_init_cfg_in_an_mmpretrain_model_is_loaded_safely(tmp_path):
    from kdzoo.models import MMPretrainClassifier
    source = MMPretrainClassifier(tiny_mmpretrain())
    checkpoint = str(tmp_path / 'classifier.pth')
    torch.save(source.model.state_dict(), checkpoint)
    whole = MMPretrainClassifier(dict(tiny_mmpretrain(), init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
    assert all(torch.equal(v, source.model.state_dict()[k]) for k, v in whole.model.state_dict().items())
    backbone_only = MMPretrainClassifier(tiny_mmpretrain(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone')))
    assert torch.equal(backbone_only.model.backbone.conv1.weight, source.model.backbone.conv1.weight)
    assert not torch.equal(backbone_only.model.head.fc.weight, source.model.head.fc.weight)
    with pytest.raises(FileNotFoundError):
        MMPretrainClassifier(dict(tiny_mmpretrain(), init_cfg=dict(type='Pretrained', checkpoint=checkpoint + 'x')))


# ------------------------------------------------------------------ ONNX export of a student with an adapter
@pytest.mark.parametrize('adapter', [dict(type='civt_tokens'), dict(type='civt_tokens', stem='dual', inference='average')])
def test_a_civt_student_exports_to_onnx_with_its_tokens(tmp_path, adapter, capsys):
    from kdzoo.registry import MODELS
    from kdzoo.tools_support import load_config, student_only_config
    extra = f"model = dict(student=dict(depth=1, embed_dim=32), adapters=[{adapter!r}])\n"
    config = tiny_config(tmp_path, 'civt', extra=extra)
    model = MODELS.build(student_only_config(load_config(config)))
    for param in model.adapters.parameters():   # trained tokens and heads, not their initial values
        param.data.normal_()
    checkpoint = str(tmp_path / 'epoch_1.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    written = load_tool('export').main([config, checkpoint, '--out-dir', str(tmp_path / 'x')])
    assert 'student.onnx' in [osp.basename(p) for p in written]
    assert 'ONNX vs PyTorch on a random batch of (2, 1, 32, 32): max |difference|' in capsys.readouterr().out


def test_export_records_input_size_and_normalisation_beside_the_weights_and_in_the_onnx(tmp_path):
    """Before: the ONNX file said nothing of the mean/std and input size needed to deploy it."""
    import json

    import onnx

    from kdzoo.registry import MODELS
    from kdzoo.tools_support import export_student, load_config, student_only_config
    config = tiny_config(tmp_path, 'kd', teacher=tmp_path / 'absent_teacher.safetensors')
    checkpoint = export_student(MODELS.build(student_only_config(load_config(config))),
                                str(tmp_path / 'student.safetensors'))
    load_tool('export').main([config, checkpoint, '--out-dir', str(tmp_path / 'x')])
    info = json.loads((tmp_path / 'x' / 'student.json').read_text())
    assert info['input_size'] == [1, 32, 32] and info['mean'] == [33.3] and info['std'] == [78.6]
    assert info['to_rgb'] is False and info['output'] == 'logits' and info['input_name'] == 'images'
    props = {p.key: json.loads(p.value) for p in onnx.load(str(tmp_path / 'x' / 'student.onnx')).metadata_props}
    assert props == {f'kdzoo.{key}': value for key, value in info.items()}


# ------------------------------------------------------------------ SyncBN where it cannot run
def test_sync_bn_in_a_cpu_distributed_run_is_refused_before_anything_starts(monkeypatch):
    import kdzoo.tools_support as support
    monkeypatch.setattr(support, 'needs_cpu_distributed', lambda launcher: launcher != 'none')
    monkeypatch.setattr(support, 'init_cpu_distributed', lambda launcher: pytest.fail('process group started'))
    cfg = support.load_config(osp.join(ROOT, 'configs', 'quickstart', 'student_only.py'), {'sync_bn': 'torch'})
    with pytest.raises(ValueError, match="sync_bn='torch' needs GPUs: torch's SyncBatchNorm does not run on CPU "
                                         "tensors.*see docs/distributed.md"):
        support.build_runner(cfg, 'pytorch')
