"""URFM distiller + APT teacher adapter (Zhao et al., ACM MM 2023; docs/methods/urfm.md).

Golden values: the iRPE bucket index and the facial distances are checked against numbers worked out by hand
(and an independent numpy computation); every loss term against a numpy re-implementation on fixed weights.
"""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmpretrain.structures import DataSample
from timm.models.swin_transformer import WindowAttention

import kdzoo.face.models  # noqa: F401  (registers the face models)
from kdzoo.face.methods import APT
from kdzoo.face.methods.urfm.adapter import PromptedWindowAttention
from kdzoo.face.methods import URFM
from kdzoo.face.methods.urfm.distiller import (ARCFACE_TEMPLATE_112, center_distances, irpe_piecewise_index, num_buckets,
                                   prompt_anchor_loss)
from kdzoo.models import DistillModel
from kdzoo.registry import MODELS
from kdzoo.taps import Feature, FeatureSpec
from tiny_models import TinyConvNet

SMALL_SWIN = dict(type='FaceSwin', arch='tiny', embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
SMALL_VIT = dict(type='FaceViT', arch='tiny', embed_dim=16, depth=2, num_heads=2)
PREPROCESSOR = dict(type='mmpretrain.ClsDataPreprocessor')


def build_frozen(cfg):
    return MODELS.build(cfg).requires_grad_(False).eval()


# ------------------------------------------------------------------------------- bucket index and distances
def test_irpe_piecewise_index_golden():
    # ratio 1.9: α = 1.9, β = 3.8, γ = 15.2. x ≤ α → round(x) (half to even: 1.5 → 2, 0.4 → 0, 0.6 → 1).
    # x > α → round(1.9 + ln(x / 1.9) / ln 8 · 1.9), capped at ⌊3.8⌋ = 3:
    #   2.0 → 1.947 → 2;  3.0 → 2.317 → 2;  3.6 → 2.484 → 2;  3.7 → 2.509 → 3;  5.0 → 2.784 → 3;  20 → 4.05 → 3.
    distances = [0.0, 0.4, 0.6, 1.5, 1.9, 2.0, 3.0, 3.6, 3.7, 5.0, 20.0]
    assert irpe_piecewise_index(distances, 1.9).tolist() == [0, 0, 1, 2, 2, 2, 2, 2, 3, 3, 3]
    assert num_buckets(1.9) == 4
    # ratio 3: α = 3, β = 6, γ = 24. 2.5 → 2; 3.5 → 3 + ln(7/6)/ln 8·3 = 3.22 → 3; 10 → 4.74 → 5; 100 → 8.06 → 6.
    assert irpe_piecewise_index([2.5, 3.5, 10.0, 100.0], 3.0).tolist() == [2, 3, 5, 6]
    assert num_buckets(3.0) == 7
    with pytest.raises(ValueError, match='>= 0'):
        irpe_piecewise_index([-1.0])


def numpy_distances(side=7):
    """Independent numpy version of docs/methods/urfm.md: (D̃, SD, RD) on the side×side grid, nose-tip anchor."""
    landmarks = np.array([(y, x) for x, y in ARCFACE_TEMPLATE_112]) / (112 / side) - 0.5
    anchor = landmarks[2]
    centers = np.array([(r, c) for r in range(side) for c in range(side)], dtype=np.float64)
    euclid = np.sqrt(((centers - anchor) ** 2).sum(1))
    to_landmarks = np.sqrt(((centers[:, None] - landmarks[None]) ** 2).sum(-1))      # (L, 5)
    anchor_to_landmarks = np.sqrt(((anchor - landmarks) ** 2).sum(-1))
    sal_centers = np.exp(-to_landmarks ** 2 / 2).max(1)
    sal_anchor = np.exp(-anchor_to_landmarks ** 2 / 2).max()
    return euclid, side * np.abs(sal_centers - sal_anchor), np.abs(to_landmarks.min(1) - anchor_to_landmarks.min())


def test_facial_distances_on_the_7x7_grid_golden():
    euclid, sd, rd = numpy_distances()
    # by hand: the nose tip (56.0252, 71.7366) px → (row, col) = (71.7366/16 − .5, 56.0252/16 − .5) = (3.98354, 3.00158)
    assert euclid[0] == pytest.approx(math.hypot(3.9835375, 3.001575), abs=1e-9)      # 4.9878
    assert euclid[0] == pytest.approx(4.9878, abs=1e-4)
    assert euclid[4 * 7 + 3] == pytest.approx(0.0165, abs=1e-4)
    assert sd[3 * 7 + 2] == pytest.approx(0.2869, abs=1e-4)                         # near the left eye
    assert sd[4 * 7 + 3] == pytest.approx(7 * (1 - math.exp(-0.0165 ** 2 / 2)), abs=1e-4)
    assert rd[0] == pytest.approx(3.3232, abs=1e-4)

    for kind, expected in (('euclidean', euclid), ('euclidean+saliency', euclid + sd),
                           ('euclidean+relative', euclid + rd)):
        ours = center_distances(kind, 7, ARCFACE_TEMPLATE_112, 2).numpy()
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)

    bucket = {kind: irpe_piecewise_index(center_distances(kind, 7, ARCFACE_TEMPLATE_112, 2), 1.9).view(7, 7)
              for kind in ('euclidean', 'euclidean+saliency', 'euclidean+relative')}
    assert bucket['euclidean'].tolist() == [
        [3, 3, 3, 3, 3, 3, 3], [3, 2, 2, 2, 2, 2, 3], [2, 2, 2, 2, 2, 2, 2], [2, 2, 1, 1, 1, 2, 2],
        [2, 2, 1, 0, 1, 2, 2], [2, 2, 1, 1, 1, 2, 2], [2, 2, 2, 2, 2, 2, 2]]
    assert bucket['euclidean+saliency'].tolist() == [
        [3] * 7, [3] * 7, [3] * 7, [3, 3, 2, 3, 2, 3, 3], [3, 3, 3, 0, 3, 3, 3], [3, 3, 2, 2, 2, 3, 3], [3] * 7]
    assert bucket['euclidean+relative'].tolist() == [
        [3] * 7, [3] * 7, [3, 3, 2, 2, 2, 3, 3], [3, 2, 2, 2, 2, 2, 3], [3, 2, 2, 0, 2, 2, 3],
        [3, 2, 2, 2, 2, 2, 3], [3, 3, 2, 2, 2, 3, 3]]
    distiller = URFM(dim=8, num_heads=2, prompt_anchor=False)
    assert distiller.queries.pe.bucket_index.tolist() == bucket['euclidean+saliency'].flatten().tolist()
    assert distiller.queries.pe.table.shape == (4, 8)


# ------------------------------------------------------------------------------- loss terms vs numpy
def np_linear(x, params, name):
    return x @ params[f'{name}.weight'].T + params[f'{name}.bias']


def np_layer_norm(x, params, name, eps=1e-5):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * params[f'{name}.weight'] + params[f'{name}.bias']


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_heads(x, heads):
    return np.swapaxes(x.reshape(*x.shape[:-1], heads, -1), -3, -2)


def np_merge(x):
    x = np.swapaxes(x, -3, -2)
    return x.reshape(*x.shape[:-2], -1)


def np_attention(q, k, v, heads):
    q, k, v = np_heads(q, heads), np_heads(k, heads), np_heads(v, heads)
    attn = np_softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]))
    return np_merge(attn @ v), attn


def np_queries(params, bucket_index):
    return np_linear(params['centers'], params, 'query') + params['pe.table'][bucket_index]


def np_mapping(features, queries, params, heads):
    features = features / np.abs(features).max(-1, keepdims=True)
    f = np_layer_norm(features @ params['proj.weight'].T, params, 'norm')
    out, _ = np_attention(np.broadcast_to(queries, (f.shape[0], *queries.shape)), np_linear(f, params, 'key'),
                          np_linear(f, params, 'value'), heads)
    return np_linear(out, params, 'out')


def np_msa(h, params, heads):
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))
    q, k, v = np.split(np_linear(np_layer_norm(h, params, 'norm1'), params, 'qkv'), 3, axis=-1)
    out, attn = np_attention(q, k, v, heads)
    x = h + np_linear(out, params, 'proj')
    hidden = gelu(np_linear(np_layer_norm(x, params, 'norm2'), params, 'mlp.0'))
    return x + np_linear(hidden, params, 'mlp.2'), attn.mean(1)


def sub_params(params, prefix):
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def fill_random(tensors, seed, std=0.5):
    """Overwrite ``{name: tensor}`` with N(0, std²) values; returns their numpy copies."""
    g = torch.Generator().manual_seed(seed)
    values = {}
    for name, tensor in tensors.items():
        tensor.data.copy_(torch.randn(tensor.shape, generator=g, dtype=torch.float64) * std)
        values[name] = tensor.detach().numpy().copy()
    return values


def small_urfm(**kwargs):
    """URFM on a 3×3 center grid, d = 8, 2 heads, built for a (6, 3, 3) student map and (10, 2, 2) teacher map."""
    distiller = URFM(center_grid=3, dim=8, num_heads=2, prompt_anchor=False, **kwargs)
    distiller.build({'stage4': FeatureSpec('stage4', 'map', (6, 3, 3), grid=(3, 3))},
                    {'stage4': FeatureSpec('stage4', 'map', (10, 2, 2), grid=(2, 2))})
    return distiller.double()


def fixed_features():
    g = torch.Generator().manual_seed(3)
    student = torch.randn(2, 6, 3, 3, generator=g, dtype=torch.float64)
    teacher = torch.randn(2, 10, 2, 2, generator=g, dtype=torch.float64)
    return ({'stage4': Feature(student, FeatureSpec('stage4', 'map', (6, 3, 3), grid=(3, 3)))},
            {'stage4': Feature(teacher, FeatureSpec('stage4', 'map', (10, 2, 2), grid=(2, 2)))})


def numpy_losses(params, teacher_shared, student_features, teacher_features, bucket_index, heads=2):
    s_tokens = student_features.reshape(2, 6, 9).transpose(0, 2, 1)
    t_tokens = teacher_features.reshape(2, 10, 4).transpose(0, 2, 1)
    h_s = np_mapping(s_tokens, np_queries(sub_params(params, 'queries.'), bucket_index),
                     sub_params(params, 'student_mapping.'), heads)
    h_t = np_mapping(t_tokens, np_queries(sub_params(teacher_shared, 'queries.'), bucket_index),
                     sub_params(params, 'teacher_mapping.'), heads)
    z_s, a_s = np_msa(h_s, sub_params(params, 'msa.'), heads)
    z_t, a_t = np_msa(h_t, sub_params(teacher_shared, 'msa.'), heads)
    return ((a_s - a_t) ** 2).mean(), ((z_s - z_t) ** 2).mean()


@pytest.mark.parametrize('teacher_ema', [False, True])
def test_loss_terms_match_numpy(teacher_ema):
    distiller = small_urfm(teacher_ema=teacher_ema, attn_weight=2.0, feat_weight=0.5)
    params = fill_random(dict(distiller.named_parameters()), seed=1)
    if teacher_ema:  # EMA copies differ from the online weights: the teacher branch must read the copies
        copies = {f'{prefix}.{name}': buffer for prefix, module in (('queries', distiller.ema_queries),
                                                                    ('msa', distiller.ema_msa))
                  for name, buffer in module.named_buffers() if name != 'pe.bucket_index'}
        ema = fill_random(copies, seed=2)
    else:
        ema = params
    student, teacher = fixed_features()
    bucket_index = distiller.queries.pe.bucket_index.numpy()
    attn, feat = numpy_losses(params, ema, student['stage4'].data.numpy(), teacher['stage4'].data.numpy(),
                              bucket_index)

    losses = distiller.eval().compute_losses(student, teacher, labels=None)
    assert set(losses) == {'loss_urfm_attn', 'loss_urfm_feat'}
    assert attn > 1e-6 and feat > 1e-3
    assert losses['loss_urfm_attn'].item() == pytest.approx(2.0 * attn, rel=1e-10)
    assert losses['loss_urfm_feat'].item() == pytest.approx(0.5 * feat, rel=1e-10)

    if teacher_ema:  # in training, the copies first move by m·copy + (1 − m)·online, m = 0.999
        moved = {k: 0.999 * v + 0.001 * params[k] for k, v in ema.items()}
        attn, feat = numpy_losses(params, moved, student['stage4'].data.numpy(), teacher['stage4'].data.numpy(),
                                  bucket_index)
        losses = distiller.train().compute_losses(student, teacher, labels=None)
        assert losses['loss_urfm_attn'].item() == pytest.approx(2.0 * attn, rel=1e-10)
        assert losses['loss_urfm_feat'].item() == pytest.approx(0.5 * feat, rel=1e-10)


def test_losses_do_not_depend_on_the_feature_scale():
    """An untrained IResNet-50's layer4 reaches 1e26; squaring that overflows a plain LayerNorm in float32."""
    distiller = small_urfm().float().eval()
    student, teacher = fixed_features()
    student['stage4'].data, teacher['stage4'].data = student['stage4'].data.float(), teacher['stage4'].data.float()
    reference = distiller.compute_losses(student, teacher, labels=None)
    teacher['stage4'].data = teacher['stage4'].data * 1e26
    scaled = distiller.compute_losses(student, teacher, labels=None)
    for name, value in reference.items():
        assert torch.isfinite(scaled[name])
        torch.testing.assert_close(scaled[name], value, rtol=1e-3, atol=1e-9)


def attention_at_init(qk_init):
    """The ORL quick-start pair (teacher randomly initialised) on a fixed batch: the attention loss, the MSA
    maps of both branches (B, L, L) and the student's local features h (B, L, d)."""
    from test_first_step_losses import build_without_checkpoints, fixed_batch
    model = build_without_checkpoints('configs/face/orl_urfm_apt.py',
                                      dict(distillers=[dict(type='urfm', qk_init=qk_init)])).train()
    inputs, samples = fixed_batch(model)
    urfm, seen = model.distillers[0], {}
    urfm.msa.register_forward_hook(lambda module, args, out: seen.update(student=out[1], h=args[0]))
    urfm.ema_msa.register_forward_hook(lambda module, args, out: seen.update(teacher=out[1]))
    with torch.no_grad():
        loss = model.loss(inputs, samples)['loss_urfm_attn'].item()
    return loss, seen['student'], seen['teacher'], seen['h']


@pytest.mark.parametrize('qk_init', ['unit', 'trunc_normal'])
def test_attention_term_carries_a_signal_at_initialisation(qk_init):
    """Measured on this batch: 'unit' gives a loss of 9e-6, rows spanning >= 0.0048 around 1/49 and h spread
    across the centres 1/3 of its std; 'trunc_normal' (the old init) 1e-11, 1e-5 and 2e-3: inert."""
    loss, student, teacher, h = attention_at_init(qk_init)
    row_range = torch.minimum(student.amax(-1) - student.amin(-1), teacher.amax(-1) - teacher.amin(-1)).min()
    centre_spread = (h.std(dim=1).mean() / h.std()).item()   # do the centres pool different regions?
    if qk_init == 'unit':
        assert loss > 1e-7 and row_range > 1e-3 and centre_spread > 0.05
    else:
        assert loss < 1e-9 and row_range < 1e-4 and centre_spread < 0.01


def test_unknown_qk_init_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"qk_init must be one of \('unit', 'trunc_normal'\), got 'xavier'"):
        URFM(qk_init='xavier')


def test_prompt_anchor_loss_matches_numpy():
    g = torch.Generator().manual_seed(5)
    prompted, frozen = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    p, f = prompted.numpy(), frozen.numpy()
    cosine = (p * f).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(f, axis=1)
    assert prompt_anchor_loss(prompted, frozen).item() == pytest.approx(float(np.mean(1 - cosine)), rel=1e-6)
    assert prompt_anchor_loss(prompted, prompted).item() == pytest.approx(0.0, abs=1e-6)


def test_collapse_guards_are_switchable_and_ema_state_is_checkpointed():
    bare = small_urfm(teacher_ema=False)
    assert not any('ema' in k for k in bare.state_dict())
    assert bare.teacher_branch() == (bare.queries, bare.msa)
    assert bare.required_taps() == {'student': ['stage4'], None: ['stage4']}

    guarded = small_urfm(teacher_ema=True)
    ema_keys = [k for k in guarded.state_dict() if k.startswith(('ema_queries.', 'ema_msa.'))]
    assert 'ema_queries.centers' in ema_keys and 'ema_msa.qkv.weight' in ema_keys
    assert not any(k.startswith('ema') for k, _ in guarded.named_parameters())   # buffers: never trained
    guarded.ema_queries.centers.add_(1.0)
    resumed = small_urfm(teacher_ema=True)
    resumed.load_state_dict(guarded.state_dict())
    assert torch.equal(resumed.ema_queries.centers, guarded.ema_queries.centers)

    models = {'student': nn.Identity(), 't': build_frozen(dict(type='iresnet18'))}
    anchored = URFM(dim=8, num_heads=2, prompt_anchor=True)    # it also reads the teacher embedding
    assert anchored.teacher_taps == ('stage4', 'logits') and anchored.reads_bare_teacher
    with pytest.raises(ValueError, match="needs an 'apt' adapter"):
        anchored.bind(['t'], adapters=[], models=models)
    automatic = URFM(dim=8, num_heads=2)     # default: the anchor is on exactly when the teacher has APT
    automatic.bind(['t'], adapters=[], models=models)
    assert not automatic.prompt_anchor and automatic.teacher_taps == ('stage4',) and not automatic.reads_bare_teacher


# ------------------------------------------------------------------------------- APT on Swin
@pytest.fixture(scope='module')
def swin_pair():
    """A small FaceSwin (stages at 56/28/14/7, window 7) and a prompted twin with the same weights."""
    bare = build_frozen(SMALL_SWIN)
    prompted = copy.deepcopy(bare)
    adapter = APT(num_prompts=3)
    adapter.attach(prompted)
    return bare, prompted, adapter


def test_apt_keeps_teacher_state_dict_keys_and_loads_bare_checkpoints(swin_pair):
    bare, prompted, adapter = swin_pair
    assert list(prompted.state_dict()) == list(bare.state_dict())
    assert [n for n, _ in prompted.named_parameters()] == [n for n, _ in bare.named_parameters()]
    assert isinstance(prompted.layers[0].blocks[0].attn, PromptedWindowAttention)
    prompted.load_state_dict(bare.state_dict(), strict=True)
    assert {k: tuple(v.shape) for k, v in adapter.prompts.items()} == {
        'stage1': (3, 16), 'stage2': (3, 32), 'stage3': (3, 64), 'stage4': (3, 128)}
    bound = math.sqrt(6 / (3 * 2 * 2 + 16))      # VPT init with the patch size 2 and d_1 = 16
    assert adapter.prompts['stage1'].abs().max() <= bound
    assert adapter.prompted_paths == ('layers.0', 'layers.1', 'layers.2', 'layers.3')

    other = copy.deepcopy(bare)
    extra = APT(num_prompts=2)
    extra.attach(other)
    extra.detach()
    assert all(isinstance(b.attn, WindowAttention) for stage in other.layers for b in stage.blocks)


def test_prompts_disabled_gives_the_bare_teacher_exactly(swin_pair):
    bare, prompted, adapter = swin_pair
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        expected = bare(x)
        with adapter.prompts_disabled():
            assert torch.equal(prompted(x), expected)
        assert adapter.last_prompt_outputs('layers.3') is None
        adapter.eval()
        assert torch.equal(prompted(x), expected)
        adapter.train()
        with_prompts = prompted(x)
    assert not torch.allclose(with_prompts, expected)
    assert adapter.last_prompt_outputs('layers.3').shape == (2, 3, 128)
    with pytest.raises(KeyError, match='not a prompted'):
        adapter.last_prompt_outputs('layers.3.blocks')


def test_patch_merging_sees_exactly_the_patch_tokens(swin_pair):
    _, prompted, adapter = swin_pair
    seen = {}
    handles = [prompted.layers[k].downsample.register_forward_pre_hook(
        lambda m, args, k=k: seen.__setitem__(k, tuple(args[0].shape))) for k in (1, 2, 3)]
    try:
        with torch.no_grad():
            prompted(torch.randn(2, 3, 112, 112))
    finally:
        for handle in handles:
            handle.remove()
    assert adapter.prompting
    assert seen == {1: (2, 56, 56, 16), 2: (2, 28, 28, 32), 3: (2, 14, 14, 64)}


def reference_prompted_windows(attention, prompts, windows, mask):
    """Per window: attention over [prompts; window tokens] with bias and mask zero on prompt rows/columns."""
    t, n, heads = prompts.shape[1], windows.shape[1], attention.num_heads
    rel = attention.relative_position_bias_table[attention.relative_position_index.view(-1)]
    rel = rel.view(n, n, heads).permute(2, 0, 1)
    num_windows = mask.shape[0]
    token_out, prompt_out = [], []
    for w in range(windows.shape[0]):
        image = w // num_windows
        bias = torch.zeros(heads, t + n, t + n)
        bias[:, t:, t:] = rel + mask[w % num_windows]
        tokens = torch.cat([prompts[image], windows[w]], dim=0)
        q, k, v = attention.qkv(tokens).view(t + n, 3, heads, -1).permute(1, 2, 0, 3)
        attn = ((q * attention.scale) @ k.transpose(-1, -2) + bias).softmax(-1)
        out = attention.proj((attn @ v).transpose(0, 1).reshape(t + n, -1))
        prompt_out.append(out[:t])
        token_out.append(out[t:])
    prompt_out = torch.stack(prompt_out).view(prompts.shape[0], num_windows, t, -1).mean(1)
    return torch.stack(token_out), prompt_out


def test_prompted_window_attention_pads_bias_and_mask_and_averages_prompts():
    original = WindowAttention(dim=8, num_heads=2, window_size=3)
    wrapper = PromptedWindowAttention(original)
    batch, num_windows, t = 2, 4, 2
    windows = torch.randn(batch * num_windows, 9, 8)
    prompts = torch.randn(batch, t, 8)
    mask = torch.zeros(num_windows, 9, 9)
    mask[1:, :4, 4:] = -100.0                                  # a shift-style mask on three windows
    with torch.no_grad():
        wrapper.pending_prompts = prompts
        tokens = wrapper(windows, mask)
        expected_tokens, expected_prompts = reference_prompted_windows(original, prompts, windows, mask)
        torch.testing.assert_close(tokens, expected_tokens, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(wrapper.prompt_output, expected_prompts, rtol=1e-5, atol=1e-6)
        assert wrapper.pending_prompts is None
        assert torch.equal(wrapper(windows, mask), original(windows, mask))     # no prompts: the original


def test_prompts_run_through_a_whole_swin_layer_like_extra_tokens(swin_pair):
    """The last layer is one 7×7 window without shift, so a prompted layer equals plain attention blocks over
    [prompts; 49 tokens] with the relative-position bias zero-padded: residual and MLP act on the prompts too."""
    _, prompted, adapter = swin_pair
    stage = prompted.layers[3]
    x = torch.randn(2, 14, 14, 64)
    with torch.no_grad():
        out = stage(x)
        z = torch.cat([adapter.prompts['stage4'].expand(2, -1, -1), stage.downsample(x).flatten(1, 2)], dim=1)
        for block in stage.blocks:
            attention = block.attn.original
            heads, t = attention.num_heads, 3
            rel = attention.relative_position_bias_table[attention.relative_position_index.view(-1)]
            bias = torch.zeros(heads, 52, 52)
            bias[:, t:, t:] = rel.view(49, 49, heads).permute(2, 0, 1)
            q, k, v = attention.qkv(block.norm1(z)).view(2, 52, 3, heads, -1).permute(2, 0, 3, 1, 4)
            attn = ((q * attention.scale) @ k.transpose(-1, -2) + bias).softmax(-1)
            z = z + attention.proj((attn @ v).transpose(1, 2).reshape(2, 52, -1))
            z = z + block.mlp(block.norm2(z))
    torch.testing.assert_close(out.flatten(1, 2), z[:, 3:], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(adapter.last_prompt_outputs('layers.3'), z[:, :3], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------- APT on ViT, and on a CNN
def test_vpt_deep_prompts_on_vit_teachers():
    bare = build_frozen(SMALL_VIT)
    prompted = copy.deepcopy(bare)
    adapter = APT(num_prompts=4)
    adapter.attach(prompted)
    assert list(prompted.state_dict()) == list(bare.state_dict())
    seen = []
    handles = [b.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1])) for b in prompted.blocks]
    handles += [b.register_forward_hook(lambda m, args, out: seen.append(out.shape[1])) for b in prompted.blocks]
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        with adapter.prompts_disabled():
            assert torch.equal(prompted(x), bare(x))
        seen.clear()
        prompted(x)
    for handle in handles:
        handle.remove()
    assert seen == [148, 144] * 2             # each block gets 144 + t tokens in, taps on it see 144 out
    assert adapter.last_prompt_outputs('blocks.1').shape == (2, 4, 16)

    cls_vit = build_frozen(dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=32,
                                patch_size=8, embed_dim=16, depth=4, num_heads=2, num_classes=3))
    cls_adapter = APT(num_prompts=2, init='trunc_normal')
    cls_adapter.attach(cls_vit)
    inputs = []
    block = cls_vit.get_submodule(cls_adapter.prompted_paths[0])
    handle = block.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    with torch.no_grad():
        cls_vit(torch.randn(2, 3, 32, 32))
    handle.remove()
    assert inputs[0].shape[1] == 1 + 2 + 16                    # class token, then the prompts, then patches
    assert torch.equal(inputs[0][:, 1:3], cls_adapter.prompts['block0'].expand(2, -1, -1))


def test_apt_on_a_cnn_teacher_fails_at_build_naming_what_is_missing():
    with pytest.raises(TypeError, match='no Swin stages .* and no ViT blocks'):
        APT().attach(TinyConvNet())
    with pytest.raises(TypeError, match='MobileFaceNet has no Swin stages'):
        DistillModel(student=dict(type='FaceRecognizer', backbone=dict(type='MobileFaceNet')),
                     teachers=dict(cnn=dict(type='MobileFaceNet')), adapters=[dict(type='apt')],
                     distillers=[dict(type='urfm', dim=32, num_heads=4)], input_size=(3, 112, 112),
                     data_preprocessor=PREPROCESSOR)


# ------------------------------------------------------------------------------- DistillModel end to end
@pytest.fixture(scope='module')
def face_pair():
    """MobileFaceNet student and FaceSwin-T teacher, both FaceRecognizers with ArcFace heads; APT + URFM."""
    torch.manual_seed(0)
    head = dict(type='ArcFaceHead', num_classes=4)
    model = DistillModel(
        student=dict(type='FaceRecognizer', backbone=dict(type='MobileFaceNet'), head=head),
        teachers=dict(swin=dict(type='FaceRecognizer', backbone=dict(type='face_swin_t'), head=head)),
        adapters=[dict(type='apt', num_prompts=4)],
        distillers=[dict(type='urfm', dim=64, num_heads=8)],
        input_size=(3, 112, 112), data_preprocessor=PREPROCESSOR)
    return model.train()


def test_distill_model_step_routes_gradients_and_updates_ema_by_ema_only(face_pair):
    model = face_pair
    urfm, apt = model.distillers[0], model.adapters[0]
    assert model.teachers_need_grad and apt.architecture == 'swin'
    teacher_before = {k: v.clone() for k, v in model.teachers.state_dict().items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    inputs = torch.randn(2, 3, 112, 112)
    samples = [DataSample().set_gt_label(k) for k in (0, 1)]

    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_arcface', 'loss_urfm_attn', 'loss_urfm_feat', 'loss_urfm_anchor'}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()

    for name, prompt in apt.prompts.items():
        assert prompt.grad is not None and prompt.grad.abs().sum() > 0, name
    for name, param in urfm.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(p.grad is not None for p in model.student.parameters())
    assert all(p.grad is None and not p.requires_grad for p in model.teachers.parameters())
    prompts_before = {k: v.detach().clone() for k, v in apt.prompts.items()}
    ema_before = {k: v.clone() for k, v in urfm.state_dict().items() if k.startswith('ema')}
    assert ema_before and not any(k.startswith('ema') for k, _ in urfm.named_parameters())
    optimizer.step()

    for key, value in model.teachers.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert all(not torch.equal(apt.prompts[k], prompts_before[k]) for k in prompts_before)
    for key, value in ema_before.items():                    # the optimiser step does not touch the copies
        assert torch.equal(urfm.state_dict()[key], value), key

    model.loss(inputs, samples)                               # the next forward moves them by EMA
    online = dict(urfm.named_parameters())
    for key, value in ema_before.items():
        expected = 0.999 * value + 0.001 * online[key.replace('ema_', '', 1)].detach()
        torch.testing.assert_close(urfm.state_dict()[key], expected, rtol=0, atol=1e-7)


class _Loader(list):
    dataset = range(2)


class _RecordingEvaluator:
    def __init__(self):
        self.outputs = []

    def process(self, data_samples, data_batch):
        self.outputs.extend(sample.pred_embedding.clone() for sample in data_samples)

    def evaluate(self, size):
        return {'num_scored': len(self.outputs)}


def test_teacher_eval_hook_scores_the_bare_teacher_while_apt_is_attached(face_pair):
    """Before training the Runner leaves the model in training mode, where APT's prompts act: the hook must
    still score the teacher as it was trained, and hand the model back in the mode it found it."""
    from types import SimpleNamespace
    from mmengine.logging import MMLogger, MessageHub
    from kdzoo.engine.hooks import TeacherEvalHook

    model = face_pair.train()
    torch.manual_seed(1)
    batch = dict(inputs=[torch.randint(0, 256, (3, 112, 112), dtype=torch.uint8) for _ in range(2)],
                 data_samples=[DataSample().set_gt_label(k) for k in (0, 1)])
    evaluator = _RecordingEvaluator()
    runner = SimpleNamespace(model=model, val_loop=SimpleNamespace(dataloader=_Loader([batch]), evaluator=evaluator),
                             message_hub=MessageHub.get_instance('teacher_eval_hook_test'),
                             logger=MMLogger.get_instance('teacher_eval_hook_test'))
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        prompted = model.teachers['swin'](data['inputs'])          # training mode: prompts act
        with model.adapters[0].prompts_disabled():
            bare = model.teachers['swin'](data['inputs'])
    assert not torch.allclose(prompted, bare)

    TeacherEvalHook().before_train(runner)

    assert model.training and model.adapters[0].training
    assert runner.message_hub.get_info('teacher/swin/num_scored') == 2
    torch.testing.assert_close(torch.stack(evaluator.outputs), bare, rtol=1e-5, atol=1e-5)
