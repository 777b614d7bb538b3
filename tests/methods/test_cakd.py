"""CAKD (docs/methods/cakd.md): golden losses against numpy, GL groups, Q/K/V replacement,
gradient routing with the two optimisers, the generator switch, build errors, one Runner training and the
multi-view generator."""
import copy

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapperDict
from mmengine.runner import Runner

from kdzoo.methods import CAKD
from kdzoo.methods.cakd.distiller import GroupWiseLinear, contiguous_groups, replace_with_teacher
from kdzoo.engine.optim import DistillOptimWrapperConstructor
from kdzoo.models import DistillModel, build_model
from kdzoo.registry import TRANSFORMS
from kdzoo.taps import Feature, FeatureSpec
from run_helpers import random_vit_teacher, tiny_config
from tiny_models import PREPROCESSOR, TINY_CNN as CNN, batch_of, fill_known

BATCH, GRID, HEADS, HEAD_DIM = 2, 8, 2, 4
TEACHER_DIM = HEADS * HEAD_DIM
VIT = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=32, patch_size=4, in_chans=1,
           num_classes=10, embed_dim=TEACHER_DIM, depth=1, num_heads=HEADS)
QKV_TAP, TOKENS_TAP = 'qkv:model.blocks.0.attn', 'model.norm'


# ----------------------------------------------------------------------------------------------- numpy side
def softplus(x):
    return np.logaddexp(0, x)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def conv2d(x, w, b=None, stride=1, pad=0):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[-1]
    ho, wo = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(k):
        for j in range(k):
            window = x[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            out += np.einsum('bchw,oc->bohw', window, w[:, :, i, j])
    return out if b is None else out + b[None, :, None, None]


def batch_norm(x, weight, bias, eps=1e-5):
    mean, var = x.mean((0, 2, 3), keepdims=True), x.var((0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight[None, :, None, None] + bias[None, :, None, None]


def leaky(x):
    return np.where(x > 0, x, 0.2 * x)


def patchgan(maps, P):
    """The docs/methods/cakd.md discriminator on (B, N, N) maps with parameters P (named as in the Sequential)."""
    x = leaky(conv2d(maps[:, None], P['0.weight'], P['0.bias'], 2, 1))
    for conv, bn, stride in (('2', '3', 2), ('5', '6', 2), ('8', '9', 1)):
        x = leaky(batch_norm(conv2d(x, P[f'{conv}.weight'], None, stride, 1), P[f'{bn}.weight'], P[f'{bn}.bias']))
    return conv2d(x, P['11.weight'], P['11.bias'], 1, 1).mean((1, 2, 3))


def heads(tokens, num_heads):
    b, n, c = tokens.shape
    return tokens.reshape(b, n, num_heads, c // num_heads).transpose(0, 2, 1, 3)


def head_mean(a, b, scale):
    return np.einsum('bhnd,bhmd->bhnm', a, b).mean(1) * scale


def mse(a, b):
    return np.mean((a - b) ** 2)


def group_of(row, col, width, block):
    return (row // block) * -(-width // block) + col // block


def gl_projection(tokens, P, block):
    out = np.zeros(tokens.shape[:2] + (P['gl.fcs.0.weight'].shape[0],))
    for pos in range(tokens.shape[1]):
        g = group_of(pos // GRID, pos % GRID, GRID, block)
        out[:, pos] = tokens[:, pos] @ P[f'gl.fcs.{g}.weight'].T + P[f'gl.fcs.{g}.bias']
    return out


def golden_losses(x, T, P, code_exact):
    """Every CAKD term from the formulas of docs/methods/cakd.md (student map x, teacher arrays T)."""
    tokens = x.reshape(x.shape[0], x.shape[1], -1).transpose(0, 2, 1)
    qkv_t = T['qkv'][:, 1:].reshape(BATCH, GRID * GRID, 3, HEADS, HEAD_DIM).transpose(2, 0, 3, 1, 4)
    if code_exact:
        qkv_s = (tokens @ P['qkv.qkv.weight'].T).reshape(BATCH, -1, 3, 16, x.shape[1] // 16).transpose(2, 0, 3, 1, 4)
        q_s, k_s, v_s = qkv_s
        attn = lambda q, k, s: head_mean(q, k, s)  # noqa: E731  (pre-softmax)
    else:
        q_s, k_s, v_s = (heads(conv2d(x, P[f'qkv.{n}.weight'], None, 1, 1).reshape(BATCH, TEACHER_DIM, -1)
                               .transpose(0, 2, 1), HEADS) for n in 'qkv')
        attn = lambda q, k, s: softmax(np.einsum('bhnd,bhmd->bhnm', q, k) * s).mean(1)  # noqa: E731
    d_s = q_s.shape[-1]
    attn_s, attn_t = attn(q_s, k_s, d_s ** -0.5), attn(qkv_t[0], qkv_t[1], HEAD_DIM ** -0.5)
    vv_t = head_mean(qkv_t[2], qkv_t[2], 1.0 if code_exact else HEAD_DIM ** -0.5)
    w = dict(attn=0.2, vv=0.05, gl=0.05) if code_exact else dict(attn=1, vv=1, gl=1)
    losses = {'loss_cakd_attn': w['attn'] * mse(attn_s, attn_t),
              'loss_cakd_vv': w['vv'] * mse(head_mean(v_s, v_s, d_s ** -0.5), vv_t),
              'loss_cakd_gl': w['gl'] * mse(gl_projection(tokens, P, GRID if code_exact else 4), T['tokens'][:, 1:])}
    if code_exact:
        cls = T['pre_logits'] @ P['cls_proj.weight'].T + P['cls_proj.bias']
        losses['loss_cakd_cls'] = mse(cls, T['tokens'][:, 0])
        losses['loss_cakd_logits'] = mse(T['student_logits'], T['logits'])
    D = {k[len('discriminator.'):]: v for k, v in P.items() if k.startswith('discriminator.')}
    losses['loss_cakd_adv'] = softplus(-patchgan(attn_s, D)).mean()
    disc = 0.5 * (softplus(-patchgan(attn_t, D)).mean() + softplus(patchgan(attn_s, D)).mean())
    return losses, disc


# ----------------------------------------------------------------------------------------------- torch side
def spec(name, kind, shape, num_prefix=0, grid=None):
    return FeatureSpec(name, kind, tuple(shape), num_prefix, grid)


def specs(channels):
    student = {'stage1': spec('stage1', 'map', (channels, GRID, GRID), grid=(GRID, GRID)),
               'pre_logits': spec('pre_logits', 'vector', (6,)), 'logits': spec('logits', 'vector', (10,))}
    teacher = {QKV_TAP: spec(QKV_TAP, 'tokens', (GRID * GRID + 1, 3 * TEACHER_DIM), 1, (GRID, GRID)),
               TOKENS_TAP: spec(TOKENS_TAP, 'tokens', (GRID * GRID + 1, TEACHER_DIM), 1, (GRID, GRID)),
               'logits': spec('logits', 'vector', (10,))}
    return student, teacher


def built_cakd(channels=4, **kwargs):
    distiller = CAKD(student_stage='stage1', schedule=None, **kwargs)
    distiller.bind(['vit'], models={'student': build_model(CNN), 'vit': build_model(VIT)})
    distiller.build(*specs(channels))
    return distiller.double().train()


def fixed_inputs(channels):
    rng = np.random.default_rng(0)
    arrays = dict(x=rng.normal(size=(BATCH, channels, GRID, GRID)),
                  qkv=rng.normal(size=(BATCH, GRID * GRID + 1, 3 * TEACHER_DIM)),
                  tokens=rng.normal(size=(BATCH, GRID * GRID + 1, TEACHER_DIM)),
                  pre_logits=rng.normal(size=(BATCH, 6)), student_logits=rng.normal(size=(BATCH, 10)),
                  logits=rng.normal(size=(BATCH, 10)))
    student_specs, teacher_specs = specs(channels)
    t = {k: torch.from_numpy(v) for k, v in arrays.items()}
    student = {'stage1': Feature(t['x'], student_specs['stage1']),
               'pre_logits': Feature(t['pre_logits'], student_specs['pre_logits']),
               'logits': Feature(t['student_logits'], student_specs['logits'])}
    teacher = {QKV_TAP: Feature(t['qkv'], teacher_specs[QKV_TAP]),
               TOKENS_TAP: Feature(t['tokens'], teacher_specs[TOKENS_TAP]),
               'logits': Feature(t['logits'], teacher_specs['logits'])}
    return arrays, student, teacher


def twin_models(**cakd):
    """Two identically initialised models (the tap hooks belong to their model, so no deepcopy)."""
    torch.manual_seed(0)
    first = make_model(**cakd)
    torch.manual_seed(0)
    return first, make_model(**cakd)


def make_model(on_nonfinite='raise', **cakd):
    cakd = dict(dict(type='cakd', student_stage='stage1', schedule=None), **cakd)
    return DistillModel(student=CNN, teachers=dict(vit=VIT), distillers=[cakd], input_size=(1, 32, 32),
                        data_preprocessor=PREPROCESSOR, on_nonfinite=on_nonfinite).train()


def fake_data(n=4):
    return dict(inputs=list(torch.randn(n, 1, 32, 32)), data_samples=batch_of(torch.arange(n) % 10))


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


# ----------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize('code_exact', [False, True], ids=['paper_p0', 'code_exact'])
def test_every_loss_term_matches_numpy(code_exact):
    channels = 16 if code_exact else 4
    distiller = built_cakd(channels, code_exact=code_exact, **({} if code_exact else dict(p=0.0)))
    params = fill_known(distiller)
    arrays, student, teacher = fixed_inputs(channels)
    losses = distiller.compute_losses(student, teacher, labels=None)
    expected, disc = golden_losses(arrays['x'], arrays, params, code_exact)
    assert set(losses) == set(expected)
    for name, value in expected.items():
        assert losses[name].item() == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert distiller.discriminator_loss()['loss_cakd_disc'].item() == pytest.approx(disc, rel=1e-9)
    assert distiller.discriminator_loss() == {}  # the cached maps are used once


def test_gl_groups_tile_a_14x14_grid_contiguously():
    groups = contiguous_groups((14, 14), 4)
    assert len(groups) == 16
    assert sorted(i for g in groups for i in g) == list(range(196))  # every position exactly once
    sizes = sorted(len(g) for g in groups)
    assert sizes == [4] + [8] * 6 + [16] * 9  # edge groups 4×2, 2×4 and the 2×2 corner
    for group in groups:
        rows, cols = sorted({i // 14 for i in group}), sorted({i % 14 for i in group})
        assert rows == list(range(rows[0], rows[-1] + 1)) and cols == list(range(cols[0], cols[-1] + 1))
        assert len(group) == len(rows) * len(cols)
    projector = GroupWiseLinear(3, 1, (14, 14), 4)
    for g, fc in enumerate(projector.fcs):  # each group's Linear writes its own index
        fc.weight.data.zero_()
        fc.bias.data.fill_(g)
    out = projector(torch.randn(1, 196, 3))[0, :, 0].reshape(14, 14)
    expected = [[group_of(r, c, 14, 4) for c in range(14)] for r in range(14)]
    assert out.tolist() == expected


def test_replacement_probability_zero_and_one():
    student, teacher = torch.randn(2, 3, 16, 4), torch.randn(2, 3, 16, 4)
    assert replace_with_teacher(student, teacher, 0.0, 'element') is student
    for mode in ('element', 'token'):
        assert torch.equal(replace_with_teacher(student, teacher, 1.0, mode), teacher)
    half = replace_with_teacher(student, teacher, 0.5, 'element') == teacher
    assert 0.4 < half.double().mean() < 0.6
    tokens = replace_with_teacher(student, teacher, 0.5, 'token') == teacher
    assert (tokens.all(dim=(1, 3)) | (~tokens).all(dim=(1, 3))).all()  # whole tokens swap

    distiller = built_cakd(p=1.0, weights=dict(gl=0, adv=0))
    _, student, teacher = fixed_inputs(4)
    losses = distiller.compute_losses(student, teacher, labels=None)
    assert losses['loss_cakd_attn'].item() == 0 and losses['loss_cakd_vv'].item() == 0
    sum(losses.values()).backward()  # nothing of the student is left in the maps
    assert all(p.grad is None or not p.grad.any() for p in distiller.qkv.parameters())


def test_gradient_routing_and_separate_optimisers():
    model, twin = twin_models(p=0.0)
    wrappers = DistillOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)))(model)
    assert isinstance(wrappers, OptimWrapperDict) and set(wrappers.keys()) == {'model', 'discriminator'}
    distiller = model.distillers[0]
    disc_ids = {id(p) for p in distiller.discriminator.parameters()}
    model_ids = {id(p) for group in wrappers['model'].param_groups for p in group['params']}
    assert disc_ids == {id(p) for group in wrappers['discriminator'].param_groups for p in group['params']}
    assert not disc_ids & model_ids
    assert wrappers['discriminator'].get_lr()['lr'] == [pytest.approx(0.001)]

    # expected SGD updates from the gradients of an identical copy
    data = fake_data()
    batch = twin.data_preprocessor(data, True)
    losses = twin.loss(batch['inputs'], batch['data_samples'])
    sum(losses.values()).backward()
    twin_distiller = twin.distillers[0]
    assert all(p.grad is None for p in twin_distiller.discriminator.parameters())  # the generator term
    twin_distiller.discriminator_loss()['loss_cakd_disc'].backward()
    grads = {k: p.grad.clone() for k, p in twin.named_parameters() if p.grad is not None}

    before, teacher_state = snapshot(model), copy.deepcopy(model.teachers.state_dict())
    log = model.train_step(data, wrappers)
    assert {'loss', 'loss_cls', 'loss_cakd_adv', 'loss_cakd_disc'} <= set(log)
    after = dict(model.named_parameters())

    def observed_lr(names):  # SGD: Δθ = −lr·g, fitted over the named tensors
        delta = torch.cat([(after[n] - before[n]).flatten() for n in names]).double()
        grad = torch.cat([grads[n].flatten() for n in names]).double()
        return (-(delta @ grad) / (grad @ grad)).item()

    trained = ['student.model.conv1.0.weight', 'distillers.0.qkv.q.weight', 'distillers.0.gl.fcs.0.weight']
    assert observed_lr(trained) == pytest.approx(0.1, rel=1e-3)
    assert observed_lr([n for n in after if '.discriminator.' in n]) == pytest.approx(0.001, rel=1e-3)
    assert all(p.grad is None and not p.requires_grad for p in model.teachers.parameters())
    assert all(torch.equal(v, teacher_state[k]) for k, v in model.teachers.state_dict().items())


def test_model_wrapper_alone_never_moves_the_discriminator():
    model = make_model()
    wrappers = DistillOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)))(model)
    before = snapshot(model.distillers[0].discriminator)
    batch = model.data_preprocessor(fake_data(), True)
    wrappers['model'].update_params(sum(model.loss(batch['inputs'], batch['data_samples']).values()))
    assert all(torch.equal(p, before[k]) for k, p in model.distillers[0].discriminator.named_parameters())
    wrappers['discriminator'].update_params(model.distillers[0].discriminator_loss()['loss_cakd_disc'])
    assert any(not torch.equal(p, before[k]) for k, p in model.distillers[0].discriminator.named_parameters())


@pytest.mark.parametrize('action', ['raise', 'skip'])
def test_nonfinite_discriminator_loss_stops_both_updates(action):
    model = make_model(on_nonfinite=action)
    wrappers = DistillOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)))(model)
    model.distillers[0].discriminator[-3].bias.data.fill_(float('inf'))  # the last conv: D outputs ±inf
    before = snapshot(model)
    if action == 'raise':
        with pytest.raises(FloatingPointError, match='loss_cakd_adv=.*loss_cakd_disc='):
            model.train_step(fake_data(), wrappers)
    else:
        model.train_step(fake_data(), wrappers)
    after = dict(model.named_parameters())
    assert all(torch.equal(after[k], v) for k, v in before.items() if torch.isfinite(v).all())


def official_discriminator_loss(discriminator, teacher_map, student_map, detach_real):
    """The official code's L_D (``gan_criterion`` = BCE-with-logits against 1 / 0), its teacher term detached
    as ``gan_criterion(pred_real.detach(), True)``; ``detach_real=False`` is the paper's Eq. 8."""
    pred_real = discriminator(teacher_map.unsqueeze(1))
    pred_fake = discriminator(student_map.detach().unsqueeze(1))
    if detach_real:
        pred_real = pred_real.detach()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    return 0.5 * (bce(pred_real, torch.ones_like(pred_real)) + bce(pred_fake, torch.zeros_like(pred_fake)))


@pytest.mark.parametrize('code_exact', [False, True], ids=['paper', 'code_exact'])
def test_discriminator_learns_from_teacher_maps_except_in_code_exact_mode(code_exact):
    channels = 16 if code_exact else 4
    distiller = built_cakd(channels, code_exact=code_exact, **({} if code_exact else dict(p=0.0)))
    fill_known(distiller)
    reference = copy.deepcopy(distiller.discriminator)
    _, student, teacher = fixed_inputs(channels)
    distiller.compute_losses(student, teacher, labels=None)
    teacher_map, student_map = distiller._adversarial_maps
    loss = distiller.discriminator_loss()['loss_cakd_disc']
    loss.backward()
    for detach_real in (False, True):
        reference.zero_grad()
        expected = official_discriminator_loss(reference, teacher_map, student_map, detach_real)
        expected.backward()
        assert loss.item() == pytest.approx(expected.item(), rel=1e-12)   # same value either way
        same = all(torch.allclose(p.grad, r.grad, rtol=1e-9, atol=1e-12)
                   for p, r in zip(distiller.discriminator.parameters(), reference.parameters()))
        assert same == (detach_real == code_exact)


@pytest.mark.parametrize('detach', [False, True])
def test_generator_term_reaches_the_student_only_when_not_detached(detach):
    distiller = built_cakd(detach_generator=detach, weights=dict(attn=0, vv=0, gl=0))
    _, student, teacher = fixed_inputs(4)
    student['stage1'].data.requires_grad_(True)
    loss = distiller.compute_losses(student, teacher, labels=None)['loss_cakd_adv']
    if detach:
        assert not loss.requires_grad
        return
    loss.backward()
    assert student['stage1'].data.grad.abs().sum() > 0
    assert distiller.qkv.q.weight.grad.abs().sum() > 0 and distiller.qkv.k.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in distiller.discriminator.parameters())


def test_cnn_teacher_and_mismatched_grid_fail_at_build():
    with pytest.raises(ValueError, match=r"teacher 'cnn' \(TimmClassifier of ResNet\) has no global token "
                                         r"attention: no module of it is a timm-style attention.*Use a teacher "
                                         r"with global token attention, e\.g\. a plain ViT / DeiT") as error:
        DistillModel(student=CNN, teachers=dict(cnn=CNN), distillers=[dict(type='cakd')], input_size=(1, 32, 32),
                     data_preprocessor=PREPROCESSOR)
    assert 'teacher_attention=' not in str(error.value)  # no module could satisfy it
    with pytest.raises(ValueError, match=r"grid must equal.*stage3: map \(16, 2, 2\).*qkv:model.blocks.0.attn"):
        make_model(student_stage='stage3')


def test_default_ramp_is_the_official_code_weight():
    distiller = CAKD()
    hub = MessageHub.get_current_instance()
    try:
        for epoch in range(60):  # the message hub's epoch is the code's 0-based e
            hub.update_info('epoch', epoch)
            assert distiller.current_weight() == pytest.approx(min(max(epoch - 25, 0) / 50, 0.2)), epoch
    finally:
        hub.update_info('epoch', 0)


def test_discriminator_optimiser_config():
    model = make_model()
    wrappers = DistillOptimWrapperConstructor(dict(
        optimizer=dict(type='SGD', lr=0.1), clip_grad=dict(max_norm=5.0),
        discriminator=dict(optimizer=dict(type='Adam', lr=0.5))))(model)
    assert isinstance(wrappers['discriminator'].optimizer, torch.optim.Adam)
    assert wrappers['discriminator'].get_lr()['lr'] == [0.5]
    assert wrappers['discriminator'].clip_grad_kwargs == wrappers['model'].clip_grad_kwargs == dict(max_norm=5.0)
    plain = make_model(weights=dict(adv=0))
    assert list(DistillOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)))(plain).keys()) == ['model']


@pytest.mark.slow
def test_runner_trains_with_the_optim_wrapper_dict(tmp_path):
    teacher = random_vit_teacher(str(tmp_path / 'vit.safetensors'))
    extra = (f"model = dict(teachers=dict(vit=dict(checkpoint={teacher!r})), "
             "distillers=[dict(type='cakd', student_stage='stage1', schedule=None)])\n")
    cfg = Config.fromfile(tiny_config(tmp_path, 'cakd', train_items=64, val_items=50, batch_size=32, extra=extra))
    cfg.work_dir, cfg.custom_hooks, cfg.param_scheduler = str(tmp_path / 'run'), [], None
    runner = Runner.from_cfg(cfg)
    discriminator = runner.model.distillers[0].discriminator
    before = snapshot(discriminator)
    runner.train()
    assert isinstance(runner.optim_wrapper, OptimWrapperDict)
    lrs = runner.optim_wrapper.get_lr()
    assert lrs['discriminator.lr'][0] == pytest.approx(0.01 * lrs['model.lr'][0])
    for key in ('train/loss', 'train/loss_cakd_adv', 'train/loss_cakd_disc', 'train/loss_cakd_gl'):
        values = runner.message_hub.get_scalar(key).data[0]
        assert len(values) == 2 and np.isfinite(values).all(), key
    assert any(not torch.equal(p, before[k]) for k, p in discriminator.named_parameters())
    saved = torch.load(tmp_path / 'run' / 'epoch_1.pth', weights_only=False)['optimizer']
    assert set(saved) == {'model', 'discriminator'}


def test_multi_view_generator_keeps_shape_and_dtype():
    rng = np.random.default_rng(0)
    for shape in ((32, 32), (32, 32, 3)):
        img = rng.integers(0, 256, size=shape, dtype=np.uint8)
        assert np.array_equal(TRANSFORMS.build(dict(type='MultiViewGenerator', prob=0.0))(dict(img=img))['img'], img)
        np.random.seed(0)
        out = TRANSFORMS.build(dict(type='MultiViewGenerator', prob=1.0))(dict(img=img.copy()))['img']
        assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    masked = TRANSFORMS.build(dict(type='MultiViewGenerator'))
    patches = masked.mask_view(np.full((32, 32), 255, np.uint8))
    assert (patches == 0).sum() == 16 * 16  # 25 % of an 8×8 grid of 4×4 patches


def test_a_learned_per_head_scale_falls_back_to_the_head_dim_rule():
    """Channel attention (EdgeNeXt's) keeps a learned temperature per head as ``scale``: not a softmax scale
    CAKD can use (the qkv: probe refuses such attention with a clear error); a number is taken as it is."""
    import torch.nn as nn
    from kdzoo.methods.cakd.distiller import attention_scale
    per_head = nn.Module()
    per_head.scale = nn.Parameter(torch.ones(4, 1, 1))
    assert attention_scale(per_head, 16) == 16 ** -0.5
    single = nn.Module()
    single.scale = 0.125
    assert attention_scale(single, 16) == 0.125
    single.scale = torch.tensor(0.5)
    assert attention_scale(single, 16) == 0.5
    assert attention_scale(nn.Module(), 64) == 0.125
