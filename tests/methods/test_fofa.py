"""FOFA / PAT and its AFP adapter (docs/methods/fofa.md): golden HCL and regulariser values against
numpy, RAA shapes, the feedback loop across steps, gradient routing, bare-teacher runs, checkpoints, the
code-exact switch and a short Runner training."""
import copy
import io
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from kdzoo.methods.fofa.adapter import (AFPBlock, FeedbackAligner, StageInput, join_stage_input, split_stage_input,
                                stage_input_of)
from kdzoo.methods.fofa.distiller import (MapStageProjector, TokenStageProjector, hcl_loss, sinusoidal_encoding,
                                   stage_as_map)
from kdzoo.distillers.base import BARE_TEACHER_OUTPUT
from kdzoo.models import DistillModel, build_model
from kdzoo.taps import Feature, FeatureSpec
from run_helpers import QUICKSTART, random_vit_teacher, tiny_config
from tiny_models import PREPROCESSOR, batch_of

MODELS = Config.fromfile(osp.join(QUICKSTART, '_models.py'))
VIT, CNN = MODELS.vit_teacher, MODELS.cnn_student   # ViT: 6 blocks, width 96, 8x8 grid + CLS at 32x32
CNN_TEACHER = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
                   channels=(32, 64, 128, 256), stem_width=16)
STAGES = ('stage1', 'stage2', 'stage3', 'stage4')
BATCH = 4


def fofa_model(teacher=VIT, afp=None, **fofa_kwargs):
    return DistillModel(student=CNN, teachers=dict(teacher=teacher), distillers=[dict(type='fofa', **fofa_kwargs)],
                        adapters=[dict(type='afp', target='teacher', **(afp or {}))], input_size=(1, 32, 32),
                        data_preprocessor=PREPROCESSOR).train()


def student_features(model, inputs):
    recorder = model.recorders['student']
    recorder.start()
    model.student(inputs)
    return recorder.collect()


def fake_batch(n=BATCH):
    return torch.randn(n, 1, 32, 32), batch_of(torch.arange(n) % 10)


def sgd_step(model, optimizer, inputs, samples):
    optimizer.zero_grad()
    losses = model.loss(inputs, samples)
    sum(losses.values()).backward()
    optimizer.step()
    return losses


def trainable_sgd(model):
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)


def set_beta(afp, value):
    for block in afp.blocks.values():
        block.beta.data.fill_(value)


# --------------------------------------------------------------------------------------- numpy references
def adaptive_avg_pool(x, size):
    """Numpy adaptive average pooling with PyTorch's windows [⌊iH/l⌋, ⌈(i+1)H/l⌉)."""
    b, c, h, w = x.shape
    out = np.zeros((b, c, size, size))
    for i in range(size):
        for j in range(size):
            rows = slice(i * h // size, -(-(i + 1) * h // size))
            cols = slice(j * w // size, -(-(j + 1) * w // size))
            out[:, :, i, j] = x[:, :, rows, cols].mean((2, 3))
    return out


def numpy_hcl(s, t):
    """MSE + Σ w_l MSE(pool_l) over the levels l ∈ (4, 2, 1) below H, w = ½, ¼, ⅛ in order, / (1 + Σ w)."""
    loss, weights = np.mean((s - t) ** 2), []
    for level in (4, 2, 1):
        if level < s.shape[2]:
            weights.append(0.5 ** (len(weights) + 1))
            loss += weights[-1] * np.mean((adaptive_avg_pool(s, level) - adaptive_avg_pool(t, level)) ** 2)
    return loss / (1 + sum(weights))


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def numpy_kl(p_logits, q_logits, t=1.0):
    """KL(softmax(p/T) ‖ softmax(q/T)) summed over classes, averaged over the batch, times T²."""
    p, q = softmax(p_logits / t), softmax(q_logits / t)
    return float((p * (np.log(p) - np.log(q))).sum(1).mean() * t * t)


def pattern(shape, phase):
    return np.sin(0.37 * np.arange(np.prod(shape)) + phase).reshape(shape) * (1 + phase)


# ------------------------------------------------------------------------------------------- golden values
@pytest.mark.parametrize('size', [8, 6, 4, 2, 1])
def test_hcl_matches_numpy(size):
    s, t = pattern((2, 3, size, size), 0.0), pattern((2, 3, size, size), 1.3)
    expected = numpy_hcl(s, t)
    assert hcl_loss(torch.from_numpy(s), torch.from_numpy(t)).item() == pytest.approx(expected, rel=1e-12)
    if size == 1:
        assert expected == pytest.approx(np.mean((s - t) ** 2))


def test_hcl_weights_by_hand():
    """A 4x4 map has the 2x2 and 1x1 levels only, weighted ½ and ¼ (the first level present gets ½)."""
    s, t = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4))
    s[0, 0, 0, 0] = 4.0                         # full MSE 1; 2x2 pool: one cell 1 -> MSE ¼; 1x1: 0.25² = 1/16
    expected = (1 + 0.5 * 0.25 + 0.25 / 16) / 1.75
    assert hcl_loss(torch.from_numpy(s), torch.from_numpy(t)).item() == pytest.approx(expected, rel=1e-12)


def test_kd_and_regulariser_match_numpy():
    """loss_fofa_reg = KL(un-prompted ‖ prompted) at T = 1; loss_fofa_kd = T²·KL(un-prompted ‖ student)."""
    model = fofa_model(temperature=2.0, kd_weight=0.5, reg_weight=3.0)
    fofa = model.distillers[0]
    student_logits, prompted, plain = pattern((BATCH, 10), 0.2), pattern((BATCH, 10), 0.9), pattern((BATCH, 10), 1.7)
    inputs, _ = fake_batch()
    teacher = model.run_teachers(inputs)['teacher']
    student = student_features(model, inputs)
    student['logits'] = Feature(torch.from_numpy(student_logits).float(), student['logits'].spec)
    teacher['logits'] = Feature(torch.from_numpy(prompted).float(), teacher['logits'].spec)
    teacher[BARE_TEACHER_OUTPUT] = Feature(torch.from_numpy(plain).float(), teacher[BARE_TEACHER_OUTPUT].spec)
    losses = fofa.compute_losses(student, teacher, None)
    assert set(losses) == {'loss_fofa_kd', 'loss_fofa_feat', 'loss_fofa_reg'}
    assert losses['loss_fofa_reg'].item() == pytest.approx(3.0 * numpy_kl(plain, prompted), rel=1e-5)
    assert losses['loss_fofa_kd'].item() == pytest.approx(0.5 * numpy_kl(plain, student_logits, 2.0), rel=1e-5)


def test_sinusoidal_encoding_matches_numpy():
    length, dim = 5, 8
    position, i = np.arange(length)[:, None], np.arange(0, dim, 2)[None]
    expected = np.zeros((length, dim))
    expected[:, 0::2] = np.sin(position / 10000 ** (i / dim))
    expected[:, 1::2] = np.cos(position / 10000 ** (i / dim))
    assert np.allclose(sinusoidal_encoding(length, dim).numpy(), expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------- shapes
def test_raa_shapes_per_stage_cnn_student_vit_teacher():
    model = fofa_model()
    fofa = model.distillers[0]
    raa = fofa.raa
    assert (raa.queries_per_stage, raa.side) == (16, 4)
    # CNN stages 16x8x8, 32x4x4, 64x2x2, 128x1x1: p = 2, 1, 1, 1; the 2x2 and 1x1 maps are upsampled to 4x4
    assert [e.proj.kernel_size for e in raa.embeds] == [(2, 2), (1, 1), (1, 1), (1, 1)]
    assert [e.size for e in raa.embeds] == [(8, 8), (4, 4), (4, 4), (4, 4)]
    inputs, _ = fake_batch()
    student = student_features(model, inputs)
    maps = [student[tap].as_map() for tap in STAGES]
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 8, 8), (32, 4, 4), (64, 2, 2), (128, 1, 1)]
    assert all(tuple(raa.embeds[k](maps[k]).shape) == (BATCH, 16, 512) for k in range(4))
    chunks = raa(maps)
    assert [tuple(c.shape) for c in chunks] == [(BATCH, 16, 512)] * 4
    for tap, chunk in zip(STAGES, chunks):   # ViT stages: 64 patch tokens of width 96, CLS removed
        assert isinstance(fofa.projectors[tap], TokenStageProjector)
        assert tuple(fofa.projectors[tap](chunk).shape) == (BATCH, 96, 8, 8)


def test_afp_sits_before_each_stage_of_the_vit_and_the_resnet():
    vit = fofa_model().teachers['teacher'].model
    prompted = [i for i, block in enumerate(vit.blocks) if block._forward_pre_hooks]
    assert prompted == [0, 1, 2, 5]          # stage outputs are blocks 0, 1, 4, 5 of 6
    model = fofa_model(teacher=CNN_TEACHER)
    resnet = model.teachers['teacher'].model
    assert [name for name, m in resnet.named_children() if m._forward_pre_hooks] == \
        ['layer1', 'layer2', 'layer3', 'layer4']
    afp, fofa = model.adapters[0], model.distillers[0]
    assert all(isinstance(fofa.projectors[tap], MapStageProjector) for tap in STAGES)
    # stage k's input is stage k-1's output (32x8x8 -> 64x4x4 ...): Δ^k is resized and projected onto it
    assert isinstance(afp.blocks['stage1'].align, torch.nn.Identity)
    assert all(isinstance(afp.blocks[f'stage{k}'].align, FeedbackAligner) for k in (2, 3, 4))
    optimizer = trainable_sgd(model)
    for _ in range(2):
        losses = sgd_step(model, optimizer, *fake_batch())
        assert all(torch.isfinite(v) for v in losses.values())
    assert tuple(afp.blocks['stage2'].feedback.shape) == (BATCH, 64, 4, 4)


# ----------------------------------------------------------------------------------------------- feedback
def test_first_step_has_no_feedback_and_the_second_uses_the_first_steps_features(monkeypatch):
    model = fofa_model()
    afp, fofa = model.adapters[0], model.distillers[0]
    set_beta(afp, 0.5)                        # β = 0 would hide every prompt
    seen_teachers, projected, fused = [], {}, {}
    original = fofa.compute_losses
    monkeypatch.setattr(fofa, 'compute_losses', lambda s, t, y: (seen_teachers.append(t), original(s, t, y))[1])
    for tap in STAGES:
        fofa.projectors[tap].register_forward_hook(lambda m, a, out, tap=tap: projected.__setitem__(tap, out))
        afp.blocks[tap].fusion.register_forward_hook(lambda m, a, out, tap=tap: fused.__setitem__(tap, a[0]))
    inputs, samples = fake_batch()

    assert all(block.feedback.numel() == 0 for block in afp.blocks.values())
    model.loss(inputs, samples)
    # step 1: no feedback; fusion only runs on zeros (weighted by 0, so DDP sees every parameter used)
    assert all(not fused[tap][:, 96:].any() for tap in STAGES)
    first = seen_teachers[0]
    for tap in STAGES:
        expected = (projected[tap] - first[tap].as_map()).detach()
        assert torch.equal(afp.blocks[tap].feedback, expected)
        assert not afp.blocks[tap].feedback.requires_grad

    stored = {tap: afp.blocks[tap].feedback for tap in STAGES}
    model.loss(inputs, samples)               # same batch, same weights: only the feedback differs
    second = seen_teachers[1]
    for tap in STAGES:                        # the fusion got [x_in, Δ of step 1] (Identity aligner for the ViT)
        assert torch.equal(fused[tap][:, 96:], stored[tap])
    assert not torch.allclose(second['logits'].data, first['logits'].data)
    assert not torch.allclose(second['stage4'].data, first['stage4'].data)
    afp.clear_feedback()
    model.loss(inputs, samples)
    assert torch.equal(seen_teachers[2]['logits'].data, first['logits'].data)


def test_feedback_of_another_batch_size_is_skipped():
    model = fofa_model()
    afp = model.adapters[0]
    set_beta(afp, 0.5)
    model.loss(*fake_batch(4))
    inputs = torch.randn(3, 1, 32, 32)
    teacher = model.teachers['teacher']
    with_stale_feedback = teacher(inputs)
    afp.clear_feedback()
    assert torch.equal(teacher(inputs), with_stale_feedback)


# ------------------------------------------------------------------------------------------ gradient flow
def test_gradients_reach_student_raa_and_afp_but_not_the_teacher():
    model = fofa_model()
    afp, fofa = model.adapters[0], model.distillers[0]
    teacher_before = copy.deepcopy(model.teachers.state_dict())
    optimizer = trainable_sgd(model)
    inputs, samples = fake_batch()

    sgd_step(model, optimizer, inputs, samples)
    for block in afp.blocks.values():        # step 1: fusion weighted by 0, β = 0 blocks the prompt's gradient
        assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in block.fusion.parameters())
        assert all(p.grad.abs().sum() == 0 for p in block.prompt.parameters())
        assert block.beta.grad.abs().sum() > 0 and block.beta.item() != 0

    losses = sgd_step(model, optimizer, inputs, samples)
    assert set(losses) == {'loss_cls', 'loss_fofa_kd', 'loss_fofa_feat', 'loss_fofa_reg'}
    for name, module in [('student', model.student), ('raa', fofa.raa), ('projectors', fofa.projectors),
                         ('afp', afp)]:
        params = list(module.named_parameters())
        assert params and all(p.grad is not None for _, p in params), name
        assert all(p.grad.abs().sum() > 0 for _, p in params), [n for n, p in params if p.grad.abs().sum() == 0]
    assert all(p.grad is None and not p.requires_grad for p in model.teachers.parameters())
    for key, value in model.teachers.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


# ------------------------------------------------------------------------------------------- bare teacher
def test_prompts_disabled_gives_the_bare_teachers_output():
    model = fofa_model()
    afp, teacher = model.adapters[0], model.teachers['teacher']
    model.loss(*fake_batch())                 # feedback exists
    set_beta(afp, 1.0)
    bare = build_model(VIT).eval()
    bare.load_state_dict(teacher.state_dict())
    x = torch.randn(BATCH, 1, 32, 32)
    with torch.no_grad():
        with afp.prompts_disabled():
            assert torch.equal(teacher(x), bare(x))
        assert not torch.allclose(teacher(x), bare(x))
        model.eval()                          # prompts act only in training mode
        assert torch.equal(teacher(x), bare(x))


def test_the_bare_teacher_pass_runs_in_distill_models_teacher_fast_path():
    """FOFA's un-prompted logits come from DistillModel: prompts off, inference mode, teacher_precision."""
    model = fofa_model()
    afp, teacher = model.adapters[0], model.teachers['teacher']
    model.loss(*fake_batch())                 # feedback exists
    set_beta(afp, 1.0)
    inputs, _ = fake_batch()
    with torch.no_grad(), afp.prompts_disabled():
        expected = teacher(inputs)
    features = model.run_teachers(inputs)['teacher']
    bare = features[BARE_TEACHER_OUTPUT].data
    assert torch.equal(bare, expected) and not torch.allclose(features['logits'].data, expected)
    assert not bare.is_inference() and not bare.requires_grad and features['stage4'].data.requires_grad

    seen = []
    teacher.register_forward_hook(lambda m, a, out: seen.append((torch.is_inference_mode_enabled(), out.dtype)))
    model.teacher_dtype = torch.bfloat16
    features = model.run_teachers(inputs)['teacher']
    assert seen == [(True, torch.bfloat16), (False, torch.bfloat16)]     # the bare pass first, then the prompted
    assert features[BARE_TEACHER_OUTPUT].data.dtype == torch.float32
    assert torch.allclose(features[BARE_TEACHER_OUTPUT].data, expected, rtol=0.05, atol=0.05)


def test_teacher_state_dict_keys_are_unchanged_by_afp():
    bare_keys = set(build_model(VIT).state_dict())
    model = fofa_model()
    assert set(model.teachers['teacher'].state_dict()) == bare_keys
    adapter_keys = [k for k in model.state_dict() if k.startswith('adapters.')]
    assert adapter_keys and all(k.startswith('adapters.0.blocks.stage') for k in adapter_keys)
    assert {f'adapters.0.blocks.{tap}.feedback' for tap in STAGES} <= set(adapter_keys)


def test_feedback_buffer_survives_a_state_dict_round_trip():
    model = fofa_model()
    model.loss(*fake_batch())
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    restored = fofa_model()
    assert all(block.feedback.numel() == 0 for block in restored.adapters[0].blocks.values())
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for tap in STAGES:
        stored = model.adapters[0].blocks[tap].feedback
        assert stored.shape == (BATCH, 96, 8, 8)
        assert torch.equal(restored.adapters[0].blocks[tap].feedback, stored)


# ----------------------------------------------------------------------------------------- code-exact mode
def vit_stage(batch=2, tokens=65):
    spec = FeatureSpec('stage1', 'tokens', (tokens, 3), num_prefix=1, grid=(8, 8))
    return Feature(torch.arange(batch * tokens * 3, dtype=torch.float32).reshape(batch, tokens, 3), spec)


def test_cls_handling_fixed_and_code_exact():
    feature = vit_stage()
    assert torch.equal(stage_as_map(feature, False), feature.data[:, 1:].transpose(1, 2).reshape(2, 3, 8, 8))
    assert torch.equal(stage_as_map(feature, True), feature.data[:, :-1].transpose(1, 2).reshape(2, 3, 8, 8))
    for layout, kept in [(StageInput('tokens', 3, (8, 8), 1), slice(1, None)),
                         (StageInput('tokens', 3, (8, 8), 1, prefix_last=True), slice(0, -1))]:
        feature_map, prefix = split_stage_input(feature.data, layout)
        assert torch.equal(feature_map, feature.data[:, kept].transpose(1, 2).reshape(2, 3, 8, 8))
        assert torch.equal(join_stage_input(feature_map, prefix, layout), feature.data)


def official_prompt_block(x, beta, prompt):
    """The PAT code's PromptBlock.forward on (B, L, D) tokens without feedback (distillers/pat.py)."""
    b, l, d = x.shape
    h = w = int(math.sqrt(l))
    cls_token = None
    if not math.sqrt(l).is_integer():
        cls_token, x = x[:, -1, :], x[:, :-1, :]
    x = torch.reshape(torch.permute(x, (0, 2, 1)), (b, d, h, w))
    x = x + beta * prompt(x)
    x = torch.reshape(x, (b, h * w, d))      # no permute: the bug code_exact reproduces
    return x if cls_token is None else torch.concat((x, cls_token.unsqueeze(1)), dim=1)


def kdzoo_afp(x, block):
    feature_map, prefix = split_stage_input(x, block.layout)
    return join_stage_input(block(feature_map), prefix, block.layout)


@pytest.mark.parametrize('beta', [0.0, 0.7])
def test_code_exact_token_return_matches_the_official_reshape(beta):
    spec = FeatureSpec('stage1', 'tokens', (65, 4), num_prefix=1, grid=(8, 8))
    torch.manual_seed(0)
    x = torch.linspace(-5, 5, 2 * 65 * 4).reshape(2, 65, 4)
    exact = AFPBlock(stage_input_of(spec, nhwc=False, code_exact=True), (4, 8, 8), gate_only=True).train()
    fixed = AFPBlock(stage_input_of(spec, nhwc=False, code_exact=False), (4, 8, 8)).train()
    for block in (exact, fixed):
        block.beta.data.fill_(beta)
    with torch.no_grad():
        torch.testing.assert_close(kdzoo_afp(x, exact), official_prompt_block(x, beta, exact.prompt),
                                   rtol=0, atol=1e-6)
        if beta == 0:    # the code scrambles the teacher's tokens even with the prompt weighted by 0
            assert (kdzoo_afp(x, exact) - x).abs().max() > 1
            assert torch.equal(kdzoo_afp(x, fixed), x)


def test_code_exact_reproduces_the_four_code_bugs():
    fixed, exact = fofa_model(), fofa_model(code_exact=True)
    assert exact.adapters[0].code_exact and not fixed.adapters[0].code_exact
    x = torch.randn(BATCH, 64, 512)
    assert torch.equal(fixed.distillers[0].raa.positional_encoding(x), sinusoidal_encoding(64, 512))
    assert torch.equal(exact.distillers[0].raa.positional_encoding(x), sinusoidal_encoding(BATCH, 512)[:, None])
    feature_map = torch.randn(BATCH, 96, 8, 8)
    assert fixed.adapters[0].blocks['stage1'].prompt[3](feature_map).shape == (BATCH, 96, 8, 8)
    assert exact.adapters[0].blocks['stage1'].prompt[3](feature_map).shape == (BATCH, 96, 1, 1)
    assert exact.adapters[0].blocks['stage1'].layout.prefix_last
    assert exact.adapters[0].blocks['stage1'].layout.unpermuted
    assert not fixed.adapters[0].blocks['stage1'].layout.unpermuted
    set_beta(exact.adapters[0], 0.5)
    optimizer = trainable_sgd(exact)
    for _ in range(2):
        assert all(torch.isfinite(v) for v in sgd_step(exact, optimizer, *fake_batch()).values())


def test_configuration_errors():
    with pytest.raises(ValueError, match=r"FOFA: needs one adapter providing FeedbackPrompts .* on teacher 'vit'; "
                                         r"found none .*add adapters=\[dict\(type='afp', target='vit'\)\]"):
        DistillModel(student=CNN, teachers=dict(vit=VIT), distillers=[dict(type='pat')], input_size=(1, 32, 32),
                     data_preprocessor=PREPROCESSOR)
    with pytest.raises(ValueError, match='perfect square'):
        fofa_model(num_queries=80)
    with pytest.raises(ValueError, match='code_exact'):
        fofa_model(afp=dict(code_exact=True))


def test_insertion_points_are_checked_or_given():
    # patch_embed's next sibling is pos_drop, whose input also carries the CLS token and position embedding
    teacher = dict(VIT, stages=['patch_embed', 'blocks.1', 'blocks.3', 'blocks.5'])
    with pytest.raises(ValueError, match="previous stages' outputs"):
        fofa_model(teacher=teacher)
    model = fofa_model(teacher=teacher, afp=dict(insert_before=['patch_embed', 'blocks.0', 'blocks.2', 'blocks.4']))
    afp = model.adapters[0]
    assert afp.blocks['stage1'].layout == StageInput('NCHW', 1, (32, 32))      # the image itself
    assert isinstance(afp.blocks['stage1'].align, FeedbackAligner)
    assert afp.blocks['stage2'].layout == StageInput('tokens', 96, (8, 8), 1)
    optimizer = trainable_sgd(model)
    for _ in range(2):
        assert all(torch.isfinite(v) for v in sgd_step(model, optimizer, *fake_batch()).values())


# ------------------------------------------------------------------------------------------- Runner training
@pytest.mark.slow
def test_quickstart_config_trains_with_the_runner(tmp_path):
    teacher = random_vit_teacher(str(tmp_path / 'vit.safetensors'))
    config = tiny_config(tmp_path, 'fofa', teacher=teacher, train_items=32, val_items=20, epochs=1, batch_size=16)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'run')
    cfg.custom_hooks = []
    cfg.param_scheduler = None  # constant LR: the quick start's 50-iteration warm-up outlasts this run
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    history = {key[6:]: hub.get_scalar(key).data[0] for key in hub.log_scalars if key.startswith('train/loss')}
    assert {'loss_cls', 'loss_fofa_kd', 'loss_fofa_feat', 'loss_fofa_reg'} <= set(history)
    assert all(len(values) == 2 and np.isfinite(values).all() for values in history.values()), history
    state = torch.load(osp.join(cfg.work_dir, 'epoch_1.pth'), map_location='cpu', weights_only=False)['state_dict']
    assert state['adapters.0.blocks.stage1.feedback'].shape == (16, 96, 8, 8)
