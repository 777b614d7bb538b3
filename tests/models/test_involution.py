"""Involution against a naive loop (docs/methods/conventions.md, 'Checks at the smallest scale', tier 0), its fp32 guard under autocast (docs/methods/civt.md),
and RedNet: shapes, parameter counts against the reference README (docs/methods/civt.md), taps, checkpoint keys."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from kdzoo.models import DistillModel
from kdzoo.models.involution import Involution, InvolutionBottleneck, RedNet, checkpoint_filter_fn, rednet26
from kdzoo.registry import MODELS
from kdzoo.taps import TapRecorder
from tiny_models import batch_of

# (channels, kernel_size, stride, group_channels, input height, input width)
INVOLUTION_CASES = [
    (8, 3, 1, 4, 6, 5),
    (8, 3, 2, 4, 7, 7),
    (16, 3, 1, 1, 5, 6),
    (12, 5, 2, 3, 8, 7),
    (32, 7, 1, 16, 6, 6),
    (32, 7, 2, 16, 7, 8),
]
# RedNet README (d-li14/involution), millions of parameters at 1000 classes, and how far a count may be
# from it: rounding to 0.01M, except RedNet-152, whose 33,984,582 parameters the README lists as 33.99M.
README_PARAMS = {26: (9.23, 0.005), 38: (12.39, 0.005), 50: (15.54, 0.005), 101: (25.65, 0.005),
                 152: (33.99, 0.01)}


def randomised_eval_involution(*args, **kwargs):
    """An involution in float64 eval mode whose BN has non-trivial running statistics."""
    involution = Involution(*args, **kwargs).double().eval()
    bn = involution.conv1.bn
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    nn.init.uniform_(bn.weight, 0.5, 1.5)
    nn.init.uniform_(bn.bias, -0.2, 0.2)
    return involution


def naive_average_pool(x, stride):
    """Mean over each stride×stride block; blocks cut by the border average what they contain."""
    b, c, h, w = x.shape
    out_h, out_w = -(-h // stride), -(-w // stride)
    out = np.zeros((b, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[:, :, i, j] = x[:, :, i * stride:(i + 1) * stride, j * stride:(j + 1) * stride].mean((2, 3))
    return out


def naive_kernels(involution, x):
    """Kernel generation written out: pool, 1×1 conv, BN (running stats), ReLU, 1×1 conv with bias."""
    def numpy_of(t):
        return t.detach().numpy()
    pooled = naive_average_pool(x, involution.stride) if involution.stride > 1 else x
    conv1, bn, conv2 = involution.conv1.conv, involution.conv1.bn, involution.conv2.conv
    hidden = np.einsum('oc,bchw->bohw', numpy_of(conv1.weight)[:, :, 0, 0], pooled)
    scale = numpy_of(bn.weight) / np.sqrt(numpy_of(bn.running_var) + bn.eps)
    hidden = (hidden - numpy_of(bn.running_mean)[:, None, None]) * scale[:, None, None] \
        + numpy_of(bn.bias)[:, None, None]
    hidden = np.maximum(hidden, 0)
    kernels = np.einsum('oc,bchw->bohw', numpy_of(conv2.weight)[:, :, 0, 0], hidden) \
        + numpy_of(conv2.bias)[:, None, None]
    b, _, h, w = kernels.shape
    return kernels.reshape(b, involution.groups, involution.kernel_size ** 2, h, w)


def naive_aggregate(x, kernels, kernel_size, stride, group_channels):
    """Y[b, c, i, j] = Σ_{u,v} W[b, c // group_channels, u·K + v, i, j] · X[b, c, i·s − p + u, j·s − p + v]."""
    b, c, h, w = x.shape
    out_h, out_w = kernels.shape[-2:]
    pad = (kernel_size - 1) // 2
    out = np.zeros((b, c, out_h, out_w))
    for channel in range(c):
        group = channel // group_channels
        for i in range(out_h):
            for j in range(out_w):
                for u in range(kernel_size):
                    for v in range(kernel_size):
                        row, col = i * stride - pad + u, j * stride - pad + v
                        if 0 <= row < h and 0 <= col < w:
                            out[:, channel, i, j] += kernels[:, group, u * kernel_size + v, i, j] \
                                * x[:, channel, row, col]
    return out


@pytest.mark.parametrize('channels,kernel_size,stride,group_channels,height,width', INVOLUTION_CASES)
def test_involution_matches_naive_loop(channels, kernel_size, stride, group_channels, height, width):
    involution = randomised_eval_involution(channels, kernel_size, stride, group_channels)
    x = torch.randn(2, channels, height, width, dtype=torch.float64)
    kernels = naive_kernels(involution, x.numpy())
    assert kernels.shape[-2:] == (-(-height // stride), -(-width // stride))
    np.testing.assert_allclose(involution.generate_kernels(x).detach().numpy(), kernels, rtol=1e-10, atol=1e-12)
    expected = naive_aggregate(x.numpy(), kernels, kernel_size, stride, group_channels)
    with torch.no_grad():
        got = involution(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_involution_rejects_bad_arguments():
    with pytest.raises(ValueError, match='multiple of group_channels'):
        Involution(24, group_channels=16)
    with pytest.raises(ValueError, match='kernel_size must be odd'):
        Involution(16, kernel_size=4)


def test_involution_runs_in_fp32_under_autocast():
    involution = Involution(32, kernel_size=3, stride=2).eval()
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        reference = involution(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert torch.nn.Conv2d(32, 8, 1)(x).dtype == torch.bfloat16   # autocast is active here
            from_fp32 = involution(x)
            from_bf16 = involution(x.bfloat16())
    assert from_fp32.dtype == from_bf16.dtype == torch.float32
    assert torch.equal(from_fp32, reference)
    assert torch.equal(from_bf16, involution(x.bfloat16().float()).detach())


def test_rednet_involutions_stay_fp32_inside_an_autocast_forward():
    model = rednet26(num_classes=10).eval()
    dtypes = {}
    for name, module in model.named_modules():
        if isinstance(module, Involution) or name == 'layer1.0.conv1':
            module.register_forward_hook(lambda m, args, out, name=name: dtypes.__setitem__(name, out.dtype))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        logits = model(torch.randn(2, 3, 32, 32))
    assert dtypes.pop('layer1.0.conv1') == torch.bfloat16
    assert len(dtypes) == 1 + 8 and set(dtypes.values()) == {torch.float32}   # stem + 1+2+4+1 blocks
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_rednet26_output_shape_and_stage_taps():
    model = MODELS.build(dict(type='rednet26', num_classes=10)).eval()
    x = torch.randn(2, 3, 32, 32)
    recorder = TapRecorder(model, ['stage1', 'stage2', 'stage3', 'stage4', 'pre_logits', 'logits'])
    specs = recorder.probe((3, 32, 32))
    assert [specs[f'stage{i}'].shape for i in range(1, 5)] == [(256, 8, 8), (512, 4, 4), (1024, 2, 2),
                                                               (2048, 1, 1)]
    assert specs['pre_logits'].kind == 'vector' and specs['pre_logits'].shape == (2048,)
    assert specs['logits'].shape == (10,)
    recorder.start()
    with torch.no_grad():
        logits = model(x)
        features = recorder.collect()
        stage4 = model.forward_features(x)
    recorder.remove()
    assert logits.shape == (2, 10)
    assert torch.equal(features['stage4'].data, stage4)
    assert torch.equal(features['pre_logits'].data, stage4.mean((2, 3)))


def test_rednet_as_imported_model_resolves_the_same_taps():
    model = MODELS.build(dict(type='ImportedModel', path='kdzoo.models.involution:rednet26', num_classes=10))
    recorder = TapRecorder(model, ['stage1', 'stage4', 'pre_logits'])
    specs = recorder.probe((3, 32, 32))
    recorder.remove()
    assert specs['stage1'].shape == (256, 8, 8) and specs['pre_logits'].shape == (2048,)


@pytest.mark.parametrize('depth', sorted(README_PARAMS))
def test_rednet_parameter_counts_match_the_reference(depth):
    count = sum(p.numel() for p in RedNet(depth, num_classes=1000).parameters())
    millions, tolerance = README_PARAMS[depth]
    assert abs(count / 1e6 - millions) <= tolerance


def test_rednet_rejects_unknown_depth():
    with pytest.raises(ValueError, match='depth must be one of'):
        RedNet(depth=34)


def test_grad_checkpointing_gives_the_same_gradients():
    block = InvolutionBottleneck(32, 64, stride=2).train()
    nn.init.uniform_(block.bn3.weight, 0.5, 1.5)
    x = torch.randn(2, 32, 8, 8, requires_grad=True)

    def gradients():
        block.zero_grad()
        x.grad = None
        block(x).square().sum().backward()
        return {'input': x.grad.clone(), **{name: p.grad.clone() for name, p in block.named_parameters()}}

    plain = gradients()
    block.grad_checkpointing = True
    checkpointed = gradients()
    assert plain['conv2.conv1.conv.weight'].abs().sum() > 0
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    model = RedNet(26, num_classes=10, grad_checkpointing=True)
    assert all(m.grad_checkpointing for m in model.modules() if isinstance(m, InvolutionBottleneck))


def test_reference_checkpoint_keys_load_after_filtering():
    model = rednet26(num_classes=10)
    reference = {f'backbone.{k}': v for k, v in model.state_dict().items() if not k.startswith('fc.')}
    reference.update({'head.fc.weight': model.fc.weight.detach(), 'head.fc.bias': model.fc.bias.detach()})
    # a few names as the reference mmcls backbone spells them
    for key in ('backbone.stem.0.conv.weight', 'backbone.stem.1.conv1.bn.running_var',
                'backbone.stem.1.conv2.conv.bias', 'backbone.stem.4.bn.weight',
                'backbone.layer1.0.conv2.conv2.conv.weight', 'backbone.layer2.0.downsample.1.weight',
                'backbone.layer4.0.bn3.weight'):
        assert key in reference, key
    rednet26(num_classes=10).load_state_dict(checkpoint_filter_fn(reference), strict=True)


def test_rednet_teacher_in_a_distill_model():
    student = dict(type='TimmClassifier', model_name='resnet10t', num_classes=10, channels=(8, 16, 16, 16),
                   stem_width=8)
    model = DistillModel(student=student, teachers=dict(red=dict(type='rednet26', num_classes=10)),
                         distillers=[dict(type='kd'), dict(type='rkd')], input_size=(3, 32, 32),
                         data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor', num_classes=10)).train()
    losses = model.loss(torch.randn(4, 3, 32, 32), batch_of(range(4)))
    assert set(losses) == {'loss_cls', 'loss_kd', 'loss_rkd_distance', 'loss_rkd_angle'}
    assert all(torch.isfinite(v) for v in losses.values())
    assert not any(m.training for m in model.teachers.modules())
