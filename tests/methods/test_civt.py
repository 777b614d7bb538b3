"""CivT / Co-advise: Eq. 5 golden value, token insertion, heads, inference modes, gradient routing,
build-time errors, detaching, dual stems, and one short Runner training."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from kdzoo.methods import CivTTokens
from kdzoo.methods.civt.distiller import civt_distillation_losses
from kdzoo.models import DistillModel, build_model
from kdzoo.taps import Feature, FeatureSpec, TapRecorder
from run_helpers import QUICKSTART, random_weights, tiny_config
from tiny_models import PREPROCESSOR, TINY_CNN as CNN, TINY_VIT as VIT, assert_gradient_routing, batch_of

NUM_PATCHES = 16


def make_model(student=VIT, adapters=(dict(type='civt_tokens'),), **distiller):
    return DistillModel(student=student, teachers=dict(regnet=CNN, rednet=CNN), input_size=(1, 16, 16),
                        distillers=[dict(type='civt', **distiller)], adapters=list(adapters),
                        data_preprocessor=PREPROCESSOR)


def images(n=4):
    return torch.randn(n, 1, 16, 16)


def block_input(student, x):
    """The token sequence entering the first transformer block."""
    seen = []
    handle = student.model.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        student(x)
    finally:
        handle.remove()
    return seen[0]


def final_tokens(student, x):
    seen = []
    handle = student.model.norm.register_forward_hook(lambda module, args, output: seen.append(output))
    try:
        output = student(x)
    finally:
        handle.remove()
    return output, seen[0]


# ------------------------------------------------------------------------------------------ Eq. 5
def numpy_kd(student, teacher, temperature):
    def log_softmax(z):
        z = z / temperature
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))
    log_p_t, log_p_s = log_softmax(teacher), log_softmax(student)
    return temperature ** 2 * (np.exp(log_p_t) * (log_p_t - log_p_s)).sum(1).mean()


def test_eq5_distillation_terms_match_numpy_golden_value():
    rng = np.random.RandomState(0)
    logits = {name: rng.randn(5, 7) * 3 for name in ('conv', 'inv', 't_conv', 't_inv')}
    weights, temperatures = {'conv': 0.5, 'inv': 2.0}, {'conv': 2.0, 'inv': 4.0}
    losses = civt_distillation_losses(
        {k: torch.tensor(logits[k]) for k in ('conv', 'inv')},
        {k: torch.tensor(logits['t_' + k]) for k in ('conv', 'inv')}, weights, temperatures)
    expected_conv = 0.5 * numpy_kd(logits['conv'], logits['t_conv'], 2.0)
    expected_inv = 2.0 * numpy_kd(logits['inv'], logits['t_inv'], 4.0)
    assert losses['loss_civt_conv'].item() == pytest.approx(expected_conv, rel=1e-10)
    assert losses['loss_civt_inv'].item() == pytest.approx(expected_inv, rel=1e-10)
    assert expected_conv == pytest.approx(2.505115812284008, rel=1e-12)   # fixed golden value
    assert expected_inv == pytest.approx(12.185504087951717, rel=1e-12)


def test_distiller_pairs_each_token_with_its_own_teacher_and_weights_the_terms():
    model = make_model(conv_weight=0.5, inv_weight=2.0, conv_temperature=2.0, loss_weight=0.25)
    distiller, adapter = model.distillers[0], model.adapters[0]
    tokens = torch.randn(3, 3 + NUM_PATCHES, 32)
    spec = FeatureSpec('model.norm', 'tokens', (3 + NUM_PATCHES, 32), num_prefix=3, grid=(4, 4))
    teacher_conv, teacher_inv = torch.randn(3, 10), torch.randn(3, 10) * 5
    logit_spec = FeatureSpec('logits', 'vector', (10,))
    losses = distiller({'model.norm': Feature(tokens, spec)},
                       {'regnet': {'logits': Feature(teacher_conv, logit_spec)},
                        'rednet': {'logits': Feature(teacher_inv, logit_spec)}}, torch.arange(3))
    heads = {k: v.detach().numpy().astype(np.float64) for k, v in adapter.token_logits(tokens).items()}
    assert heads['conv'] == pytest.approx(adapter.head_conv(tokens[:, 1]).detach().numpy().astype(np.float64))
    expected_conv = 0.25 * 0.5 * numpy_kd(heads['conv'], teacher_conv.double().numpy(), 2.0)
    expected_inv = 0.25 * 2.0 * numpy_kd(heads['inv'], teacher_inv.double().numpy(), 1.0)
    assert losses['loss_civt_conv'].item() == pytest.approx(expected_conv, rel=1e-5)
    assert losses['loss_civt_inv'].item() == pytest.approx(expected_inv, rel=1e-5)


# ------------------------------------------------------------------------------------------ tokens and taps
def test_tokens_are_inserted_after_cls_and_taps_strip_three_prefix_tokens():
    plain = build_model(VIT).eval()
    x = images()
    before = block_input(plain, x)
    adapter = CivTTokens()
    adapter.attach(plain)
    after = block_input(plain, x)
    assert after.shape[1] == before.shape[1] + 2 == 1 + 2 + NUM_PATCHES
    assert torch.equal(after[:, 0], before[:, 0])                 # CLS (+ its position embedding) first
    assert torch.equal(after[:, 3:], before[:, 1:])               # patch tokens unchanged, in order
    assert torch.equal(after[:, 1:3], adapter.tokens.expand(4, -1, -1))
    assert plain.model.num_prefix_tokens == 3 and plain.kdzoo_num_prefix_tokens == 3

    recorder = TapRecorder(plain, ['stage2', 'model.norm'])
    specs = recorder.probe((1, 16, 16))
    assert all(s.num_prefix == 3 and s.grid == (4, 4) for s in specs.values())
    recorder.start()
    plain(x)
    feature = recorder.collect()['stage2']
    recorder.remove()
    assert feature.prefix_tokens().shape == (4, 3, 32)
    assert feature.patch_tokens().shape == (4, NUM_PATCHES, 32) and feature.as_map().shape == (4, 32, 4, 4)


def test_heads_read_the_conv_and_inv_tokens_and_the_output_stays_the_cls_head():
    model = make_model().eval()
    adapter, vit = model.adapters[0], model.student.model
    output, tokens = final_tokens(model.student, images())
    assert torch.allclose(output, vit.head(tokens[:, 0]))
    logits = adapter.token_logits(tokens)
    assert torch.allclose(logits['conv'], adapter.head_conv(tokens[:, 1]))
    assert torch.allclose(logits['inv'], adapter.head_inv(tokens[:, 2]))
    assert adapter.head_conv.weight.shape == adapter.head_inv.weight.shape == (10, 32)


def test_inference_cls_by_default_average_of_three_heads_on_request():
    model = make_model(adapters=[dict(type='civt_tokens', inference='average')])
    adapter, vit = model.adapters[0], model.student.model
    x = images()
    model.train()
    output, tokens = final_tokens(model.student, x)
    assert torch.allclose(output, vit.head(tokens[:, 0]))         # training: CLS logits, CE's input
    model.eval()
    output, tokens = final_tokens(model.student, x)
    heads = adapter.token_logits(tokens)
    average = (vit.head(tokens[:, 0]) + heads['conv'] + heads['inv']) / 3
    assert torch.allclose(output, average, atol=1e-6)
    scores = torch.stack([s.pred_score for s in model.predict(x, batch_of(range(4)))])
    assert torch.allclose(scores, average.softmax(1), atol=1e-6)
    adapter.inference = 'cls'
    assert torch.allclose(model.student(x), vit.head(tokens[:, 0]), atol=1e-6)


# ------------------------------------------------------------------------------------------ training step
@pytest.mark.parametrize('stem', ['learnable', 'dual'])
def test_gradients_reach_student_tokens_and_heads_teachers_stay_frozen(stem):
    model = make_model(adapters=[dict(type='civt_tokens', stem=stem)]).train()
    losses = model.loss(images(), batch_of(range(4)))
    assert set(losses) == {'loss_cls', 'loss_civt_conv', 'loss_civt_inv'}
    # the dual stems replace the patch embedding, which is frozen while attached
    frozen = ('model.patch_embed.',) if stem == 'dual' else ()
    assert all(n.startswith(frozen) == (not p.requires_grad) for n, p in model.student.named_parameters())
    assert_gradient_routing(model, losses, frozen_student_params=frozen, connectors=True)


def test_dual_stems_replace_the_patch_embedding_and_give_the_tokens():
    model = make_model(adapters=[dict(type='civt_tokens', stem='dual')]).eval()
    adapter, vit = model.adapters[0], model.student.model
    x = images()
    sequence = block_input(model.student, x)
    conv_map, inv_map = adapter.conv_stem(x), adapter.inv_stem(x)
    assert conv_map.shape == inv_map.shape == (4, 32, 4, 4)
    patches = (conv_map + inv_map).flatten(2).transpose(1, 2) + vit.pos_embed[:, 1:]
    assert torch.allclose(sequence[:, 3:], patches, atol=1e-5)
    pooled = torch.stack([conv_map.mean((2, 3)), inv_map.mean((2, 3))], 1) + adapter.token_pos_embed
    assert torch.allclose(sequence[:, 1:3], pooled, atol=1e-5)


# ------------------------------------------------------------------------------------------ build errors
def test_cnn_student_fails_at_build_naming_the_requirement_and_the_model():
    expected = "class-token ViT student.*the student \\(ResNet\\) is not a timm VisionTransformer"
    with pytest.raises(ValueError, match=expected):
        make_model(student=CNN)                      # the adapter refuses to attach
    with pytest.raises(ValueError, match="CivT: needs one adapter providing TokenHeads .* on the student; found "
                                         "none .*type='civt_tokens'"):
        make_model(student=CNN, adapters=())         # the distiller finds no token heads to distil into
    with pytest.raises(ValueError, match="the student \\(VisionTransformer\\) pools its tokens with "
                                         "global_pool='avg'"):
        make_model(student=dict(VIT, global_pool='avg'))


def test_missing_adapter_or_teacher_fails_at_build():
    with pytest.raises(ValueError, match="CivT: needs one adapter providing TokenHeads \\(slot 'tokens'\\) on the "
                                         "student; found none.*add adapters=\\[dict\\(type='civt_tokens'\\)\\]"):
        make_model(adapters=())
    with pytest.raises(KeyError, match="inv_teacher='involution' is not among the model's teachers "
                                       "\\['regnet', 'rednet'\\]"):
        make_model(inv_teacher='involution')
    with pytest.raises(ValueError, match="stem must be one of"):
        make_model(adapters=[dict(type='civt_tokens', stem='conv')])


# ------------------------------------------------------------------------------------------ detach
@pytest.mark.parametrize('stem', ['learnable', 'dual'])
def test_detaching_restores_the_original_student_exactly(stem):
    student = build_model(VIT).eval()
    x = images()
    original = student(x)
    grads = [p.requires_grad for p in student.parameters()]
    adapter = CivTTokens(stem=stem, inference='average')
    adapter.attach(student)
    adapter.eval()
    assert not torch.allclose(student(x), original)
    adapter.detach()
    assert torch.equal(student(x), original)
    assert student.model.num_prefix_tokens == 1 and student.kdzoo_num_prefix_tokens == 1
    assert [p.requires_grad for p in student.parameters()] == grads
    adapter.attach(student)                          # re-attaching reuses the trained tokens and heads
    assert student.model.num_prefix_tokens == 3


# ------------------------------------------------------------------------------------------ Runner


@pytest.mark.slow
def test_quickstart_config_trains_with_random_teachers(tmp_path):
    base = Config.fromfile(f'{QUICKSTART}/civt.py')
    cnn = random_weights(base.cnn_teacher, str(tmp_path / 'cnn.safetensors'))
    rednet = random_weights(base.rednet_teacher, str(tmp_path / 'rednet.safetensors'))
    extra = (f"model = dict(teachers=dict(cnn=dict(checkpoint={cnn!r}), rednet=dict(checkpoint={rednet!r})))\n"
             "custom_hooks = []\nparam_scheduler = None\n")
    cfg = Config.fromfile(tiny_config(tmp_path, 'civt', train_items=16, val_items=8, batch_size=8,
                                      extra=extra))
    cfg.work_dir = str(tmp_path / 'run')
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    for name in ('loss', 'loss_cls', 'loss_civt_conv', 'loss_civt_inv'):
        values = hub.get_scalar(f'train/{name}').data[0]
        assert len(values) == 2 and np.isfinite(values).all(), name
    assert 0 <= hub.get_scalar('val/accuracy/top1').current() <= 100


def test_quickstart_teacher_configs_train_the_models_civt_loads():
    civt = Config.fromfile(f'{QUICKSTART}/civt.py')
    for name, teacher in civt.model.teachers.items():
        teacher_cfg = Config.fromfile(civt.teacher_configs[name].replace('configs/quickstart', QUICKSTART))
        assert teacher_cfg.model.student == teacher.model, name
