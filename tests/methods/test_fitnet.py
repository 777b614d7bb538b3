"""FitNet: golden losses against numpy loops (docs/methods/fitnet.md), aligner shapes, errors, gradients."""
import numpy as np
import pytest
import torch

from kdzoo.methods import FitNet
from kdzoo.methods.fitnet.distiller import (ConvRegressor, PatchEmbedAligner, ResizeAligner, StudentSpaceToDepthAligner,
                                     TeacherSpaceToDepthAligner, TokenExpandAligner, TokenMergeAligner,
                                     UnpatchifyAligner)
from kdzoo.taps import Feature, FeatureSpec
from tiny_models import (DEIT_STUDENT_32 as DEIT_STUDENT, RESNET18 as RESNET,
                         VIT_TEACHER_32 as VIT_TEACHER, check_gradient_routing, fill_known)

BATCH = 2


# ----------------------------------------------------------------------------------------------- helpers
def fake(name, kind, shape, num_prefix=0, grid=None):
    if kind == 'map' and grid is None:
        grid = tuple(shape[1:])
    spec = FeatureSpec(name, kind, tuple(shape), num_prefix, grid)
    return Feature(torch.randn(BATCH, *shape, dtype=torch.float64), spec)


def built_fitnet(student, teacher, **kwargs):
    distiller = FitNet(student_stages=[student.spec.name], teacher_stages=[teacher.spec.name], **kwargs)
    distiller.bind(['teacher'])
    distiller.build({student.spec.name: student.spec}, {teacher.spec.name: teacher.spec})
    return distiller.double()


def fitnet_loss(student, teacher, **kwargs):
    """(loss, numpy weights, aligner) with the aligner's weights set to known values."""
    distiller = built_fitnet(student, teacher, **kwargs)
    aligner = distiller.aligners[student.spec.name]
    weights = fill_known(aligner)
    losses = distiller.compute_losses({student.spec.name: student}, {teacher.spec.name: teacher}, None)
    assert list(losses) == [f'loss_fitnet_{student.spec.name}']
    return losses[f'loss_fitnet_{student.spec.name}'].item(), weights, aligner


def np_of(feature):
    return feature.data.numpy()


def mse(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.mean((a - b) ** 2))


def conv2d(x, weight, bias, stride=1, padding=0):
    b, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    padded = np.zeros((b, c, h + 2 * padding, w + 2 * padding))
    padded[:, :, padding:padding + h, padding:padding + w] = x
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    out = np.zeros((b, out_c, oh, ow))
    for n in range(b):
        for o in range(out_c):
            for i in range(oh):
                for j in range(ow):
                    window = padded[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, o, i, j] = np.sum(window * weight[o]) + bias[o]
    return out


def conv_transpose2d(x, weight, bias, stride, padding):
    b, c, h, w = x.shape
    _, out_c, kh, kw = weight.shape
    oh, ow = (h - 1) * stride - 2 * padding + kh, (w - 1) * stride - 2 * padding + kw
    out = np.zeros((b, out_c, oh, ow)) + bias[None, :, None, None]
    for n in range(b):
        for ci in range(c):
            for i in range(h):
                for j in range(w):
                    for u in range(kh):
                        for v in range(kw):
                            y, z = i * stride - padding + u, j * stride - padding + v
                            if 0 <= y < oh and 0 <= z < ow:
                                out[n, :, y, z] += x[n, ci, i, j] * weight[ci, :, u, v]
    return out


def batch_norm_relu(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * gamma[None, :, None, None] + beta[None, :, None, None]
    return np.maximum(y, 0)


def linear(tokens, weight, bias):
    return np.einsum('bnc,oc->bno', tokens, weight) + bias


def map_to_tokens(x):
    b, c, h, w = x.shape
    out = np.zeros((b, h * w, c))
    for i in range(h):
        for j in range(w):
            out[:, i * w + j] = x[:, :, i, j]
    return out


def group_blocks(tokens, grid, s):
    """s×s blocks of a row-major token grid → (B, C·s², h/s, w/s), channel c·s² + u·s + v."""
    b, _, c = tokens.shape
    h, w = grid[0] // s, grid[1] // s
    out = np.zeros((b, c * s * s, h, w))
    for i in range(h):
        for j in range(w):
            for u in range(s):
                for v in range(s):
                    token = (i * s + u) * grid[1] + (j * s + v)
                    for ch in range(c):
                        out[:, ch * s * s + u * s + v, i, j] = tokens[:, token, ch]
    return out


def bilinear_resize(x, out_h, out_w):
    """PyTorch's bilinear interpolation with align_corners=False."""
    def taps(out_size, in_size):
        result = []
        for o in range(out_size):
            src = max((o + 0.5) * in_size / out_size - 0.5, 0.0)
            i0 = int(np.floor(src))
            result.append((i0, min(i0 + 1, in_size - 1), src - i0))
        return result
    b, c, h, w = x.shape
    out = np.zeros((b, c, out_h, out_w))
    for i, (y0, y1, ly) in enumerate(taps(out_h, h)):
        for j, (x0, x1, lx) in enumerate(taps(out_w, w)):
            out[:, :, i, j] = ((1 - ly) * ((1 - lx) * x[:, :, y0, x0] + lx * x[:, :, y0, x1])
                               + ly * ((1 - lx) * x[:, :, y1, x0] + lx * x[:, :, y1, x1]))
    return out


# ------------------------------------------------------------------------------------- golden: case A
def test_golden_cnn_student_token_teacher_patch_embed():
    student = fake('s', 'map', (3, 4, 4))
    teacher = fake('t', 'tokens', (1 + 4, 5), num_prefix=1, grid=(2, 2))
    loss, w, aligner = fitnet_loss(student, teacher)
    assert isinstance(aligner, PatchEmbedAligner)
    x, p = np_of(student), 2
    expected = np.zeros((BATCH, 4, 5))
    for i in range(2):
        for j in range(2):
            patch = x[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p]
            expected[:, i * 2 + j] = np.einsum('bcuv,dcuv->bd', patch, w['proj.weight']) + w['proj.bias']
    assert loss == pytest.approx(mse(expected, np_of(teacher)[:, 1:]), rel=1e-10)


def test_golden_cnn_student_token_teacher_space_to_depth():
    student = fake('s', 'map', (3, 2, 2))
    teacher = fake('t', 'tokens', (16, 2), grid=(4, 4))
    loss, w, aligner = fitnet_loss(student, teacher)
    assert isinstance(aligner, TeacherSpaceToDepthAligner)
    prediction = map_to_tokens(conv2d(np_of(student), w['proj.weight'], w['proj.bias']))
    target = map_to_tokens(group_blocks(np_of(teacher), (4, 4), 2))
    assert prediction.shape == (BATCH, 4, 8)
    assert loss == pytest.approx(mse(prediction, target), rel=1e-10)


# ------------------------------------------------------------------------------------- golden: case B
def test_golden_token_student_cnn_teacher_unpatchify():
    student = fake('s', 'tokens', (1 + 4, 3), num_prefix=1, grid=(2, 2))
    teacher = fake('t', 'map', (2, 4, 4))
    loss, w, aligner = fitnet_loss(student, teacher)
    assert isinstance(aligner, UnpatchifyAligner)
    y, p, channels = linear(np_of(student)[:, 1:], w['proj.weight'], w['proj.bias']), 2, 2
    prediction = np.zeros((BATCH, channels, 4, 4))
    for i in range(2):
        for j in range(2):
            for c in range(channels):
                for u in range(p):
                    for v in range(p):
                        prediction[:, c, i * p + u, j * p + v] = y[:, i * 2 + j, c * p * p + u * p + v]
    assert loss == pytest.approx(mse(prediction, np_of(teacher)), rel=1e-10)


def test_golden_token_student_cnn_teacher_space_to_depth():
    student = fake('s', 'tokens', (16, 2), grid=(4, 4))
    teacher = fake('t', 'map', (3, 2, 2))
    loss, w, aligner = fitnet_loss(student, teacher)
    assert isinstance(aligner, StudentSpaceToDepthAligner)
    prediction = conv2d(group_blocks(np_of(student), (4, 4), 2), w['proj.weight'], w['proj.bias'])
    assert loss == pytest.approx(mse(prediction, np_of(teacher)), rel=1e-10)


# ------------------------------------------------------------------------------------- golden: case C
def test_golden_tokens_to_more_tokens_expand():
    student = fake('s', 'tokens', (1 + 4, 3), num_prefix=1, grid=(2, 2))
    teacher = fake('t', 'tokens', (16, 3), grid=(4, 4))
    loss, w, aligner = fitnet_loss(student, teacher)
    assert isinstance(aligner, TokenExpandAligner)
    y = linear(np_of(student)[:, 1:], w['proj.weight'], w['proj.bias'])      # (B, 4, r·D_s = 12)
    assert y.shape == (BATCH, 4, 12)
    prediction = np.zeros((BATCH, 16, 3))
    for n in range(16):
        for d in range(3):
            flat = n * 3 + d
            prediction[:, n, d] = y[:, flat // 12, flat % 12]
    assert loss == pytest.approx(mse(prediction, np_of(teacher)), rel=1e-10)


def test_golden_tokens_to_fewer_tokens_merge():
    student = fake('s', 'tokens', (16, 2), grid=(4, 4))
    teacher = fake('t', 'tokens', (1 + 4, 3), num_prefix=1, grid=(2, 2))
    loss, w, aligner = fitnet_loss(student, teacher)
    assert isinstance(aligner, TokenMergeAligner)
    grouped = map_to_tokens(group_blocks(np_of(student), (4, 4), 2))       # (B, 4, 8)
    prediction = linear(grouped, w['proj.weight'], w['proj.bias'])
    assert loss == pytest.approx(mse(prediction, np_of(teacher)[:, 1:]), rel=1e-10)


# ------------------------------------------------------------------------------------- golden: CNN ↔ CNN
@pytest.mark.parametrize('student_hw, teacher_hw, stride, padding', [
    ((3, 3), (3, 3), 1, 0),       # same size: 1×1 conv
    ((4, 4), (2, 2), 2, 1),       # twice the teacher: 3×3 stride 2
    ((5, 5), (3, 3), 1, 0),       # larger: kernel 1 + 5 − 3 = 3
])
def test_golden_cnn_to_cnn_conv_bn_relu(student_hw, teacher_hw, stride, padding):
    student = fake('s', 'map', (3, *student_hw))
    teacher = fake('t', 'map', (2, *teacher_hw))
    loss, w, aligner = fitnet_loss(student, teacher)
    assert isinstance(aligner, ConvRegressor) and isinstance(aligner.conv, torch.nn.Conv2d)
    conv = conv2d(np_of(student), w['conv.weight'], w['conv.bias'], stride, padding)
    prediction = batch_norm_relu(conv, w['bn.weight'], w['bn.bias'])
    assert loss == pytest.approx(mse(prediction, np_of(teacher)), rel=1e-9)


def test_golden_cnn_to_cnn_half_size_transposed_conv():
    student = fake('s', 'map', (3, 2, 2))
    teacher = fake('t', 'map', (2, 4, 4))
    loss, w, aligner = fitnet_loss(student, teacher)
    assert isinstance(aligner.conv, torch.nn.ConvTranspose2d)
    conv = conv_transpose2d(np_of(student), w['conv.weight'], w['conv.bias'], stride=2, padding=1)
    prediction = batch_norm_relu(conv, w['bn.weight'], w['bn.bias'])
    assert loss == pytest.approx(mse(prediction, np_of(teacher)), rel=1e-9)


def test_golden_non_integer_ratio_resizes_bilinearly():
    student = fake('s', 'map', (3, 3, 3))
    teacher = fake('t', 'tokens', (1 + 4, 2), num_prefix=1, grid=(2, 2))
    loss, w, aligner = fitnet_loss(student, teacher)
    assert isinstance(aligner, ResizeAligner)
    resized = bilinear_resize(np_of(student), 2, 2)
    prediction = map_to_tokens(conv2d(resized, w['proj.weight'], w['proj.bias']))
    assert loss == pytest.approx(mse(prediction, np_of(teacher)[:, 1:]), rel=1e-10)


# ----------------------------------------------------------------------------------------------- shapes
SHAPE_CASES = {
    # name: (student (kind, shape, prefix, grid), teacher (...), aligner type)
    'cnn->vit H>g': (('map', (8, 8, 8), 0, None), ('tokens', (17, 12), 1, (4, 4)), PatchEmbedAligner),
    'cnn->vit H=g': (('map', (8, 4, 4), 0, None), ('tokens', (17, 12), 1, (4, 4)), PatchEmbedAligner),
    'cnn->vit H<g': (('map', (8, 2, 2), 0, None), ('tokens', (65, 12), 1, (8, 8)), TeacherSpaceToDepthAligner),
    'vit->cnn H>g': (('tokens', (17, 12), 1, (4, 4)), ('map', (6, 8, 8), 0, None), UnpatchifyAligner),
    'vit->cnn H<g': (('tokens', (65, 12), 1, (8, 8)), ('map', (6, 2, 2), 0, None), StudentSpaceToDepthAligner),
    'tokens->more tokens': (('tokens', (17, 12), 1, (4, 4)), ('tokens', (64, 6), 0, (8, 8)), TokenExpandAligner),
    'tokens->fewer tokens': (('tokens', (64, 6), 0, (8, 8)), ('tokens', (17, 12), 1, (4, 4)), TokenMergeAligner),
    'tokens->same count': (('tokens', (17, 12), 1, (4, 4)), ('tokens', (16, 6), 0, (4, 4)), TokenMergeAligner),
    'tokens->more, ratio 3.5': (('tokens', (16, 8), 0, (4, 4)), ('tokens', (49, 8), 0, (7, 7)), ResizeAligner),
    'cnn->cnn same': (('map', (8, 4, 4), 0, None), ('map', (6, 4, 4), 0, None), ConvRegressor),
    'cnn->cnn 2x': (('map', (8, 8, 8), 0, None), ('map', (6, 4, 4), 0, None), ConvRegressor),
    'cnn->cnn half': (('map', (8, 2, 2), 0, None), ('map', (6, 4, 4), 0, None), ConvRegressor),
    'cnn->cnn quarter': (('map', (8, 1, 1), 0, None), ('map', (6, 4, 4), 0, None), ConvRegressor),
    'cnn->vit 14 vs 8': (('map', (8, 14, 14), 0, None), ('tokens', (65, 12), 1, (8, 8)), ResizeAligner),
    'vit->cnn 8 vs 3': (('tokens', (65, 12), 1, (8, 8)), ('map', (6, 3, 3), 0, None), ResizeAligner),
}


@pytest.mark.parametrize('case', list(SHAPE_CASES))
def test_aligner_shapes(case):
    (s_kind, s_shape, s_prefix, s_grid), (t_kind, t_shape, t_prefix, t_grid), aligner_type = SHAPE_CASES[case]
    student = fake('s', s_kind, s_shape, s_prefix, s_grid)
    teacher = fake('t', t_kind, t_shape, t_prefix, t_grid)
    distiller = built_fitnet(student, teacher)
    aligner = distiller.aligners['s']
    assert isinstance(aligner, aligner_type)
    prediction, target = aligner(student, teacher)
    assert prediction.shape == target.shape
    expected = (BATCH, *t_shape) if t_kind == 'map' else (BATCH, t_shape[0] - t_prefix, t_shape[1])
    if isinstance(aligner, TeacherSpaceToDepthAligner):
        factor = t_grid[0] // s_shape[1]
        expected = (BATCH, s_shape[1] * s_shape[2], factor ** 2 * t_shape[1])
    assert tuple(target.shape) == expected
    loss = distiller.compute_losses({'s': student}, {'t': teacher}, None)['loss_fitnet_s']
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_kind_override_reads_a_map_teacher_as_tokens():
    """A Swin-like map teacher read as tokens gets PAT's patch-embedding aligner instead of a regressor."""
    student, teacher = fake('s', 'map', (8, 8, 8)), fake('t', 'map', (6, 4, 4))
    distiller = built_fitnet(student, teacher, teacher_kind='tokens')
    aligner = distiller.aligners['s']
    assert isinstance(aligner, PatchEmbedAligner)
    prediction, target = aligner(student, teacher)
    assert prediction.shape == target.shape == (BATCH, 16, 6)


@pytest.mark.parametrize('student, teacher', [
    (('tokens', (50, 8), 0, None), ('map', (4, 2, 2), 0, None)),    # no patch grid to lay out
    (('map', (8, 4, 4), 0, None), ('tokens', (50, 8), 0, None)),
    (('tokens', (50, 8), 0, None), ('tokens', (20, 8), 0, None)),   # fewer tokens, no grid to group
    (('vector', (8,), 0, None), ('map', (4, 2, 2), 0, None)),
])
def test_uncovered_pairs_name_both_shapes_and_taps(student, teacher):
    s_kind, s_shape, s_prefix, s_grid = student
    t_kind, t_shape, t_prefix, t_grid = teacher
    s_spec = FeatureSpec('student_tap_x', s_kind, s_shape, s_prefix, s_grid)
    t_spec = FeatureSpec('teacher_tap_y', t_kind, t_shape, t_prefix, t_grid or (t_shape[1:] if t_kind == 'map'
                                                                                  else None))
    distiller = FitNet(student_stages=['student_tap_x'], teacher_stages=['teacher_tap_y'])
    distiller.bind(['teacher'])
    with pytest.raises(ValueError) as error:
        distiller.build({'student_tap_x': s_spec}, {'teacher_tap_y': t_spec})
    message = str(error.value)
    for text in ('student_tap_x', 'teacher_tap_y', str(tuple(s_shape)), str(tuple(t_shape))):
        assert text in message


# ------------------------------------------------------------------------------------------- arguments
def test_stage_lists_losses_and_init():
    student = {name: fake(name, 'map', shape) for name, shape in
               (('layer_a', (4, 4, 4)), ('layer.b', (8, 2, 2)))}
    teacher = {name: fake(name, 'tokens', (17, 16), 1, (4, 4)) for name in ('blocks.1', 'blocks.3')}
    distiller = FitNet(student_stages=['layer_a', 'layer.b'], teacher_stages=['blocks.1', 'blocks.3'])
    distiller.bind(['teacher'])
    distiller.build({k: v.spec for k, v in student.items()}, {k: v.spec for k, v in teacher.items()})
    assert distiller.required_taps() == {'student': ['layer_a', 'layer.b'], 'teacher': ['blocks.1', 'blocks.3']}
    losses = distiller.double().compute_losses(student, teacher, None)
    assert list(losses) == ['loss_fitnet_layer_a', 'loss_fitnet_layer_b']
    conv = distiller.aligners['layer_b'].proj
    expected_std = (2 / (conv.out_channels * 1 * 1)) ** 0.5      # Kaiming-normal, fan_out, ReLU gain
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.15)
    with pytest.raises(ValueError, match='equal length'):
        FitNet(student_stages=['stage1'], teacher_stages=['stage1', 'stage2'])
    with pytest.raises(ValueError, match='teacher_kind'):
        FitNet(teacher_kind='grid')


def test_linear_aligner_init_is_trunc_normal_with_zero_bias():
    student = fake('s', 'tokens', (17, 64), 1, (4, 4))
    teacher = fake('t', 'map', (64, 8, 8))
    proj = built_fitnet(student, teacher).aligners['s'].proj
    assert torch.count_nonzero(proj.bias) == 0
    assert proj.weight.std().item() == pytest.approx(0.02, rel=0.15)
    assert proj.weight.abs().max().item() <= 2.0


# ------------------------------------------------------------------------------------------- gradients


STAGE_LOSSES = [f'loss_fitnet_stage{k}' for k in range(1, 5)]


def test_gradients_vit_teacher_to_resnet_student():
    model = check_gradient_routing(RESNET, VIT_TEACHER, dict(type='fitnet'), STAGE_LOSSES,
                                   unused_student_params=('model.fc.',))
    aligners = model.distillers[0].aligners
    assert isinstance(aligners['stage1'], PatchEmbedAligner)
    assert all(isinstance(aligners[f'stage{k}'], TeacherSpaceToDepthAligner) for k in (2, 3, 4))


def test_gradients_cnn_teacher_to_vit_student():
    model = check_gradient_routing(DEIT_STUDENT, RESNET, dict(type='FitNet'), STAGE_LOSSES,
                                   unused_student_params=('model.norm.', 'model.head.'))
    aligners = model.distillers[0].aligners
    assert isinstance(aligners['stage1'], UnpatchifyAligner)
    assert all(isinstance(aligners[f'stage{k}'], StudentSpaceToDepthAligner) for k in (2, 3, 4))
