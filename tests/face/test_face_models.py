"""Face recognition models: backbones (shapes, sizes, stage taps), margin heads (golden values from the
formula, gradients), Partial FC (single process and sharded over 2 gloo processes), FaceRecognizer.

Small variants run real forwards on batch 2; the large ones are built and run on the meta device, which
gives every shape (and MACs) without computing anything.
"""
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from kdzoo.face.models import (ArcFaceHead, CombinedMargin, CombinedMarginHead, CosFaceHead, FaceRecognizer,
                               FaceSwin, FaceViT, IResNet, MobileFaceNet, PartialFC,
                               exclude_sharded_centres_from_ddp)
from kdzoo.face.models.heads import normalized_cosine, shard_range
from kdzoo.registry import MODELS
from kdzoo.taps.recorder import TapRecorder

FACE_INPUT = (3, 112, 112)
EMBED = 512


def num_params(model):
    return sum(p.numel() for p in model.parameters())


_BUILT = {}


def shared_backbone(name):
    """One real instance per backbone name for the whole module (building face ViTs costs seconds)."""
    if name not in _BUILT:
        _BUILT[name] = MODELS.build(dict(type=name))
    return _BUILT[name]


_ON_META = {}


def shared_meta_backbone(name):
    """One meta-device instance per backbone name (shapes and MACs without memory or compute)."""
    if name not in _ON_META:
        with torch.device('meta'):
            _ON_META[name] = MODELS.build(dict(type=name)).eval()
    return _ON_META[name]


def count_macs(model):
    """Multiply-accumulates of the convolutions and linear layers for one 112x112 image (meta device)."""
    total = 0

    def hook(module, args, output):
        nonlocal total
        per_output = module.in_features if isinstance(module, nn.Linear) else \
            module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += output[0].numel() * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, *FACE_INPUT, device='meta'))
    for handle in handles:
        handle.remove()
    return total


# ----------------------------------------------------------------------------------------------------------
# Backbones
# ----------------------------------------------------------------------------------------------------------
SMALL_BACKBONES = ['iresnet18', 'mobilefacenet', 'mbf', 'face_vit_t', 'face_swin_t']
LARGE_BACKBONES = ['iresnet34', 'iresnet50', 'iresnet100', 'mbf_large', 'face_vit_s', 'face_vit_b',
                   'face_swin_s', 'face_swin_b']


@pytest.mark.parametrize('name', SMALL_BACKBONES)
def test_small_backbone_embeds_112_faces_to_512(name):
    model = shared_backbone(name).train()
    faces = torch.randn(2, *FACE_INPUT)
    with torch.no_grad():
        out = model(faces)  # train mode: BN batch statistics, drop-path
    assert out.shape == (2, EMBED) and torch.isfinite(out).all()
    with torch.no_grad():
        assert model(faces).shape == (2, EMBED)
    assert model.embedding_size == EMBED


@pytest.mark.parametrize('name', LARGE_BACKBONES)
def test_large_backbone_output_shape_on_meta(name):
    model = shared_meta_backbone(name)
    assert model(torch.zeros(2, *FACE_INPUT, device='meta')).shape == (2, EMBED)


def test_mobilefacenet_has_the_documented_1_19m_parameters():
    # docs/face_reference.md §5: "the 1.19M-parameter version"; measured 1,199,488 with the non-affine
    # embedding BN1d (the usual "1.19M" is this number truncated).
    params = num_params(MobileFaceNet())
    assert abs(params - 1.19e6) / 1.19e6 < 0.01, params
    assert params == 1_199_488


def test_mbf_is_the_wider_grouped_variant():
    mfn, wide = MobileFaceNet('mfn'), MobileFaceNet('mbf')
    assert num_params(wide) > 1.5 * num_params(mfn)
    stage1_conv = wide.layers[1].layers[0]
    assert stage1_conv.in_channels == 128 and stage1_conv.groups == 64  # grouped, not depthwise
    assert wide.features.layers[3].affine and not mfn.features.layers[3].affine


@pytest.mark.parametrize('name, doc_macs', [('iresnet18', 2.6e9), ('iresnet50', 6.3e9), ('iresnet100', 12.1e9),
                                            ('mobilefacenet', 227e6)])
def test_macs_match_face_recognition_doc(name, doc_macs):
    macs = count_macs(shared_meta_backbone(name))
    assert abs(macs - doc_macs) / doc_macs < 0.03, f'{name}: {macs / 1e9:.3f} GMACs vs doc {doc_macs / 1e9}'


@pytest.mark.parametrize('depth, blocks', [(18, (2, 2, 2, 2)), (34, (3, 4, 6, 3)), (50, (3, 4, 14, 3)),
                                           (100, (3, 13, 30, 3))])
def test_iresnet_layout(depth, blocks):
    model = shared_meta_backbone(f'iresnet{depth}')
    assert isinstance(model, IResNet)
    assert tuple(len(getattr(model, f'layer{i}')) for i in range(1, 5)) == blocks
    assert model.fc.in_features == 512 * 7 * 7 == 25088
    assert not model.features.weight.requires_grad  # arcface_torch freezes the embedding BN scale at 1
    block = model.layer1[0]
    assert [type(m) for m in (block.bn1, block.conv1, block.bn2, block.prelu, block.conv2, block.bn3)] == \
        [nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d, nn.PReLU, nn.Conv2d, nn.BatchNorm2d]
    assert block.conv2.stride == (2, 2) and block.conv1.stride == (1, 1)


def test_face_vit_follows_arcface_torch():
    from timm.layers import Attention
    model = shared_backbone('face_vit_t')
    assert model.num_patches == 144 and model.pos_embed.shape == (1, 144, 256)
    assert not hasattr(model, 'cls_token') and model.kdzoo_taps.prefix_tokens == 0
    assert model.feature[0].in_features == 144 * 256
    attn = model.blocks[0].attn
    assert isinstance(attn, Attention) and hasattr(attn, 'attn_drop') and hasattr(attn, 'fused_attn')
    assert attn.qkv.bias is None and isinstance(model.blocks[0].mlp.act, nn.ReLU6)
    rates = [block.drop_path1.drop_prob for block in model.blocks[1:]]
    assert rates == sorted(rates) and math.isclose(rates[-1], 0.1, rel_tol=1e-6)
    assert model.kdzoo_taps.stages == ('blocks.1', 'blocks.3', 'blocks.9', 'blocks.11')  # blocks 2, 4, 10, 12
    assert shared_meta_backbone('face_vit_b').kdzoo_taps.stages == ('blocks.3', 'blocks.7', 'blocks.19',
                                                                    'blocks.23')


def test_face_vit_training_mask_keeps_the_embedding_shape():
    model = FaceViT('tiny', depth=2, mask_ratio=0.1).train()
    faces = torch.randn(2, *FACE_INPUT)
    assert model(faces).shape == (2, EMBED)
    tokens = model.patch_embed(faces) + model.pos_embed
    kept, restore = model.random_masking(tokens)
    assert kept.shape == (2, int(144 * 0.9), 256)
    restored = model.restore_masking(kept, restore)
    is_mask = (restored == model.mask_token).all(dim=2)
    assert (is_mask.sum(dim=1) == 144 - kept.shape[1]).all()
    torch.testing.assert_close(restored[~is_mask], tokens[~is_mask])  # kept tokens go back to their place


def test_face_swin_is_timm_swin_with_a_7x7_last_stage():
    from timm.models.swin_transformer import SwinTransformer, WindowAttention
    model = shared_meta_backbone('face_swin_s')
    assert isinstance(model, FaceSwin) and isinstance(model, SwinTransformer)
    assert [stage.output_resolution for stage in model.layers] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert [len(stage.blocks) for stage in model.layers] == [2, 2, 18, 2]
    assert model.kdzoo_taps.grid == (7, 7) and model.kdzoo_taps.layout == 'NHWC'
    attn = model.layers[3].blocks[0].attn
    assert isinstance(attn, WindowAttention) and attn.window_size == (7, 7) and hasattr(attn, 'attn_drop')


# Stage outputs as kdzoo's taps read them (maps normalised to NCHW; tokens (N, C) with their grid).
STAGE_SPECS = {
    'iresnet18': ('map', [(64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]),
    'mobilefacenet': ('map', [(64, 56, 56), (64, 28, 28), (128, 14, 14), (512, 7, 7)]),
    'mbf': ('map', [(128, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]),
    'face_vit_t': ('tokens', [(144, 256)] * 4),
    'face_swin_t': ('map', [(96, 56, 56), (192, 28, 28), (384, 14, 14), (768, 7, 7)]),
}


@pytest.mark.parametrize('name', sorted(STAGE_SPECS))
def test_recognizer_stage_taps_give_documented_shapes(name):
    recognizer = FaceRecognizer(backbone=shared_backbone(name))
    stages = recognizer.kdzoo_taps.stages
    assert stages == tuple(f'backbone.{p}' for p in recognizer.backbone.kdzoo_taps.stages)
    for path in stages:
        recognizer.get_submodule(path)
    recorder = TapRecorder(recognizer, ['stage1', 'stage2', 'stage3', 'stage4'], name)
    specs = recorder.probe(FACE_INPUT)
    recorder.remove()
    kind, shapes = STAGE_SPECS[name]
    assert [specs[f'stage{i}'].kind for i in range(1, 5)] == [kind] * 4
    assert [specs[f'stage{i}'].shape for i in range(1, 5)] == shapes
    assert specs['stage4'].grid == (7, 7) if kind == 'map' else specs['stage4'].grid == (12, 12)


def test_token_backbones_forward_their_tap_hints():
    vit = FaceRecognizer(backbone=shared_backbone('face_vit_t'))
    assert vit.kdzoo_taps.prefix_tokens == 0 and vit.kdzoo_taps.grid == (12, 12)
    assert vit.kdzoo_taps.stages == ('backbone.blocks.1', 'backbone.blocks.3', 'backbone.blocks.9',
                                     'backbone.blocks.11')
    swin = FaceRecognizer(backbone=shared_meta_backbone('face_swin_s'))
    assert swin.kdzoo_taps.layout == 'NHWC' and swin.kdzoo_taps.grid == (7, 7)
    mobile = FaceRecognizer(backbone=MobileFaceNet()).kdzoo_taps
    assert mobile.layout == 'NCHW' and mobile.grid is None and mobile.stages[-1] == 'backbone.conv_sep'


def test_attention_taps_read_timm_attention_probabilities():
    vit = FaceRecognizer(backbone=shared_backbone('face_vit_t'))
    recorder = TapRecorder(vit, ['attn:backbone.blocks.11.attn'], 'vit')
    spec = recorder.probe(FACE_INPUT)['attn:backbone.blocks.11.attn']
    recorder.remove()
    assert spec.kind == 'attn' and spec.shape == (8, 144, 144)


# ----------------------------------------------------------------------------------------------------------
# Margin heads: golden values from the formula, computed here with numpy
# ----------------------------------------------------------------------------------------------------------
def numpy_target_cosine(cos_t, m1, m2, m3):
    """cos(m1*theta + m2) - m3; past theta_max = (pi - m2) / m1, cos(theta) - (pi - theta_max) sin(theta_max) - m3
    (for m1 = 1: insightface's cos(theta) - sin(pi - m) * m)."""
    theta = np.arccos(cos_t)
    theta_max = (np.pi - m2) / m1
    margined = np.cos(m1 * theta + m2)
    if m1 != 1.0 or m2 != 0.0:
        fallback = cos_t - (np.pi - theta_max) * np.sin(theta_max)
        margined = np.where(theta <= theta_max, margined, fallback) if theta_max < np.pi else margined
    return margined - m3


def numpy_margin_loss(embeddings, centres, labels, s, m1, m2, m3):
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    w = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    cosine = np.clip(e @ w.T, -1.0, 1.0)
    rows = np.arange(len(labels))
    logits = s * cosine
    logits[rows, labels] = s * numpy_target_cosine(cosine[rows, labels], m1, m2, m3)
    top = logits.max(axis=1, keepdims=True)
    log_sum_exp = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return float(np.mean(log_sum_exp - logits[rows, labels])), logits


FIXED = np.random.RandomState(2024)
FIXED_EMBEDDINGS = FIXED.randn(6, 16)
FIXED_CENTRES = FIXED.randn(10, 16)
FIXED_LABELS = np.array([0, 3, 3, 7, 9, 2])

HEAD_CASES = {
    'arcface': (ArcFaceHead, dict(), (1.0, 0.5, 0.0), 'loss_arcface'),
    'cosface': (CosFaceHead, dict(), (1.0, 0.0, 0.35), 'loss_cosface'),
    'combined': (CombinedMarginHead, dict(m1=1.0, m2=0.3, m3=0.2), (1.0, 0.3, 0.2), 'loss_combined_margin'),
    'multiplicative': (CombinedMarginHead, dict(m1=1.35, m2=0.25, m3=0.1), (1.35, 0.25, 0.1),
                       'loss_combined_margin'),
}


def fixed_head(cls, kwargs, dtype=torch.float64):
    head = cls(num_classes=10, embed_dim=16, **kwargs).to(dtype)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(FIXED_CENTRES))
    return head


@pytest.mark.parametrize('case', sorted(HEAD_CASES))
def test_margin_head_matches_the_formula(case):
    cls, kwargs, (m1, m2, m3), loss_name = HEAD_CASES[case]
    expected_loss, expected_logits = numpy_margin_loss(FIXED_EMBEDDINGS, FIXED_CENTRES, FIXED_LABELS, 64.0,
                                                       m1, m2, m3)
    head = fixed_head(cls, kwargs)
    assert head.loss_name == loss_name
    loss, logits = head(torch.from_numpy(FIXED_EMBEDDINGS), torch.from_numpy(FIXED_LABELS), return_logits=True)
    np.testing.assert_allclose(logits.detach().numpy(), expected_logits, rtol=1e-9, atol=1e-9)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-9)
    # float32 (the training dtype) agrees to float32 precision
    loss32 = fixed_head(cls, kwargs, torch.float32)(torch.from_numpy(FIXED_EMBEDDINGS).float(),
                                                   torch.from_numpy(FIXED_LABELS))
    assert loss32.item() == pytest.approx(expected_loss, rel=1e-4)


@pytest.mark.parametrize('m1, m2, m3', [(1.0, 0.5, 0.0), (1.0, 0.3, 0.2), (1.35, 0.25, 0.1)])
def test_margin_fallback_past_pi(m1, m2, m3):
    """Targets whose margined angle passes pi use the threshold fallback, not the rising cosine."""
    cosines = np.array([0.9, 0.3, -0.5, -0.85, -0.95, -0.999])
    margin = CombinedMargin(64.0, m1, m2, m3)
    cosine = torch.from_numpy(cosines)[:, None].repeat(1, 2)
    labels = torch.zeros(len(cosines), dtype=torch.long)
    logits = margin(cosine, labels)
    np.testing.assert_allclose(logits[:, 0].numpy() / 64.0, numpy_target_cosine(cosines, m1, m2, m3), atol=1e-6)
    np.testing.assert_allclose(logits[:, 1].numpy() / 64.0, cosines)  # non-targets untouched
    assert (np.arccos(cosines) * m1 + m2 > np.pi).any()  # the fallback branch really ran
    if m1 == 1.0:  # insightface's constants: th = cos(pi - m), mm = sin(pi - m) * m
        assert margin.cos_theta_max == pytest.approx(math.cos(math.pi - m2))
        assert margin.fallback_penalty == pytest.approx(math.sin(math.pi - m2) * m2)


def test_easy_margin_leaves_obtuse_targets_alone():
    margin = CombinedMargin(64.0, 1.0, 0.5, 0.0, easy_margin=True)
    cosine = torch.tensor([[0.6, 0.1], [-0.4, 0.1]], dtype=torch.float64)
    logits = margin(cosine, torch.tensor([0, 0])) / 64.0
    assert logits[0, 0].item() == pytest.approx(math.cos(math.acos(0.6) + 0.5))
    assert logits[1, 0].item() == pytest.approx(-0.4)


@pytest.mark.parametrize('case', sorted(HEAD_CASES))
def test_margin_head_gradients_reach_embeddings_and_centres(case):
    cls, kwargs, _, _ = HEAD_CASES[case]
    head = fixed_head(cls, kwargs, torch.float32)
    embeddings = torch.from_numpy(FIXED_EMBEDDINGS).float().requires_grad_()
    head(embeddings, torch.from_numpy(FIXED_LABELS)).backward()
    for grad in (embeddings.grad, head.weight.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize('m1, m2, m3', [(1.0, 0.5, 0.0), (1.35, 0.25, 0.1)])
def test_margin_loss_gradcheck(m1, m2, m3):
    margin = CombinedMargin(8.0, m1, m2, m3)
    labels = torch.tensor([1, 0, 2])

    def loss(embeddings, centres):
        return F.cross_entropy(margin(normalized_cosine(embeddings, centres), labels), labels)

    embeddings = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    centres = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(loss, (embeddings, centres))


# ----------------------------------------------------------------------------------------------------------
# Partial FC, one process
# ----------------------------------------------------------------------------------------------------------
def test_partial_fc_single_process_equals_full_softmax():
    full = fixed_head(CombinedMarginHead, dict(m2=0.5))
    pfc = PartialFC(num_classes=10, embed_dim=16).double()
    pfc.load_state_dict(full.state_dict(), strict=False)
    assert pfc.num_local == 10 and pfc.loss_name == 'loss_arcface'
    labels = torch.from_numpy(FIXED_LABELS)
    e_full = torch.from_numpy(FIXED_EMBEDDINGS).requires_grad_()
    e_pfc = torch.from_numpy(FIXED_EMBEDDINGS).requires_grad_()
    loss_full, loss_pfc = full(e_full, labels), pfc(e_pfc, labels)
    assert loss_pfc.item() == pytest.approx(loss_full.item(), rel=1e-12)
    loss_full.backward()
    loss_pfc.backward()
    torch.testing.assert_close(e_pfc.grad, e_full.grad)
    torch.testing.assert_close(pfc.weight.grad, full.weight.grad)


@pytest.mark.parametrize('labels, expected_samples', [([4, 4, 17, 30, 31, 2], 12), (list(range(0, 40, 3)), 14)])
def test_partial_fc_sampling_keeps_every_positive(labels, expected_samples):
    pfc = PartialFC(num_classes=40, embed_dim=16, sample_rate=0.3).double()
    labels = torch.tensor(labels)
    embeddings = torch.randn(len(labels), 16, dtype=torch.float64, requires_grad=True)
    loss, logits = pfc(embeddings, labels, return_logits=True)
    index = pfc.sampled_index
    assert set(labels.tolist()) <= set(index.tolist())
    assert len(index) == expected_samples == logits.shape[1]  # int(0.3 * 40) = 12, or all 14 positives
    assert torch.equal(index, index.sort().values)
    # the loss is the margin softmax over the sampled centres only
    reference = CombinedMarginHead(num_classes=len(index), embed_dim=16).double()
    with torch.no_grad():
        reference.weight.copy_(pfc.weight[index])
    remapped = torch.searchsorted(index, labels)
    assert loss.item() == pytest.approx(reference(embeddings, remapped).item(), rel=1e-12)
    loss.backward()
    unsampled = torch.ones(40, dtype=torch.bool)
    unsampled[index] = False
    assert pfc.weight.grad[unsampled].abs().sum() == 0 and pfc.weight.grad[index].abs().sum() > 0


def test_shard_ranges_cover_all_classes_once():
    for num_classes, world_size in [(10, 1), (11, 2), (85742, 8), (5, 4)]:
        ranges = [shard_range(num_classes, r, world_size) for r in range(world_size)]
        starts = [start for start, _ in ranges]
        assert starts == sorted(starts) and sum(n for _, n in ranges) == num_classes
        assert all(a[0] + a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert max(n for _, n in ranges) - min(n for _, n in ranges) <= 1


# ----------------------------------------------------------------------------------------------------------
# Partial FC, sharded across 2 gloo processes
# ----------------------------------------------------------------------------------------------------------
DIST_CLASSES, DIST_DIM, DIST_PER_RANK = 11, 16, 4
DIST_MARGIN = dict(s=64.0, m1=1.0, m2=0.3, m3=0.2)


def _sharded_partial_fc_worker(rank, world_size, init_file, data_file, out_dir):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        data = torch.load(data_file)
        pfc = PartialFC(DIST_CLASSES, DIST_DIM, **DIST_MARGIN).double()
        pfc.load_state_dict({'weight': data['weight']})  # a full-weight checkpoint loads into any world size
        rows = slice(rank * DIST_PER_RANK, (rank + 1) * DIST_PER_RANK)
        embeddings = data['embeddings'][rows].clone().requires_grad_()
        loss = pfc(embeddings, data['labels'][rows])
        loss.backward()
        model = nn.ModuleDict(dict(neck=nn.Linear(2, 2).double(), head=pfc))
        excluded = exclude_sharded_centres_from_ddp(model)
        # DDP checks that every rank has the same parameter shapes: shards of 6 and 5 centres only pass
        # because they are excluded.
        nn.parallel.DistributedDataParallel(model)
        torch.save(dict(loss=loss.detach(), weight_grad=pfc.weight.grad, embedding_grad=embeddings.grad,
                        class_start=pfc.class_start, num_local=pfc.num_local, full_centres=pfc.full_centres(),
                        excluded=excluded),
                   os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


@pytest.mark.dist
def test_partial_fc_sharded_over_two_processes_equals_full_softmax(tmp_path):
    world_size = 2
    generator = torch.Generator().manual_seed(7)
    weight = torch.randn(DIST_CLASSES, DIST_DIM, generator=generator, dtype=torch.float64)
    embeddings = torch.randn(world_size * DIST_PER_RANK, DIST_DIM, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 5, 6, 10, 3, 6, 9, 1])  # targets on both shards (0-5 | 6-10)
    torch.save(dict(weight=weight, embeddings=embeddings, labels=labels), tmp_path / 'data.pt')

    mp.spawn(_sharded_partial_fc_worker, nprocs=world_size, join=True,
             args=(world_size, str(tmp_path / 'init'), str(tmp_path / 'data.pt'), str(tmp_path)))

    full = CombinedMarginHead(DIST_CLASSES, DIST_DIM, **DIST_MARGIN).double()
    with torch.no_grad():
        full.weight.copy_(weight)
    single = embeddings.clone().requires_grad_()
    full_loss = full(single, labels)
    full_loss.backward()
    for rank in range(world_size):
        out = torch.load(tmp_path / f'rank{rank}.pt')
        assert (out['class_start'], out['num_local']) == [(0, 6), (6, 5)][rank]
        assert out['loss'].item() == pytest.approx(full_loss.item(), rel=1e-12)
        shard = slice(out['class_start'], out['class_start'] + out['num_local'])
        torch.testing.assert_close(out['weight_grad'], full.weight.grad[shard])
        rows = slice(rank * DIST_PER_RANK, (rank + 1) * DIST_PER_RANK)
        # embeddings get world_size x the gradient, which DDP's averaging turns back into the exact one
        torch.testing.assert_close(out['embedding_grad'], world_size * single.grad[rows])
        torch.testing.assert_close(out['full_centres'], weight)
        assert out['excluded'] == ['head.weight']


# ----------------------------------------------------------------------------------------------------------
# FaceRecognizer
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('head, loss_name', [
    (dict(type='ArcFaceHead', num_classes=7), 'loss_arcface'),
    (dict(type='CosFaceHead', num_classes=7), 'loss_cosface'),
    (dict(type='CombinedMarginHead', num_classes=7, m1=1.0, m2=0.3, m3=0.2), 'loss_combined_margin'),
    (dict(type='PartialFC', num_classes=7, sample_rate=0.5), 'loss_arcface'),
])
def test_recognizer_task_loss_from_config(head, loss_name):
    model = MODELS.build(dict(type='FaceRecognizer', backbone=dict(type='mobilefacenet'), head=head))
    assert model.head.embed_dim == EMBED
    embedding = model(torch.randn(2, *FACE_INPUT))
    assert embedding.shape == (2, EMBED)
    assert not torch.allclose(embedding.norm(dim=1), torch.ones(2))  # raw, not normalised
    losses = model.task_loss(embedding, torch.tensor([1, 4]))
    assert list(losses) == [loss_name] and losses[loss_name].dim() == 0
    losses[loss_name].backward()
    assert model.head.weight.grad is not None
    assert model.backbone.conv_sep.layers[0].weight.grad.abs().sum() > 0


def test_recognizer_without_head_only_embeds():
    model = FaceRecognizer(backbone=MobileFaceNet()).eval()
    with pytest.raises(RuntimeError, match='margin head'):
        model.task_loss(torch.randn(2, EMBED), torch.tensor([0, 1]))
    faces = torch.randn(2, *FACE_INPUT)
    embedding, flipped = model.embed_with_flip(faces)
    torch.testing.assert_close(flipped, model(faces.flip(3)))
    samples = model.predict_samples(embedding, flip_embeddings=flipped)
    torch.testing.assert_close(samples[1]['pred_embedding'], embedding[1])
    torch.testing.assert_close(samples[1]['pred_embedding_flip'], flipped[1])


def test_distill_model_uses_the_recognizer_margin_loss():
    from mmpretrain.structures import DataSample
    from kdzoo.models import DistillModel
    model = DistillModel(student=dict(type='FaceRecognizer', backbone=dict(type='mobilefacenet'),
                                      head=dict(type='ArcFaceHead', num_classes=5)),
                         input_size=FACE_INPUT)
    samples = [DataSample().set_gt_label(label) for label in (1, 3)]
    losses = model.loss(torch.randn(2, *FACE_INPUT), samples)
    assert list(losses) == ['loss_arcface'] and torch.isfinite(losses['loss_arcface'])
