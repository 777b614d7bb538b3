"""Taps on mmpretrain models whose layout differs from timm's (found by tools/tap_matrix.py --source mmpretrain)."""
import pytest
import torch

from kdzoo.models import MMPretrainClassifier
from kdzoo.taps import TapRecorder

SIZE = (3, 32, 32)


def vit_cfg(patch_size=8):
    return dict(type='ImageClassifier', neck=None,
                backbone=dict(type='VisionTransformer', img_size=32, patch_size=patch_size,
                              arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)),
                head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=32))


def test_qkv_tap_reads_the_attention_function_an_mmpretrain_module_keeps():
    # mmpretrain's MultiheadAttention calls the SDPA function it stored at build time, not F.<function>
    model = MMPretrainClassifier(vit_cfg()).eval()
    attention = model.get_submodule('model.backbone.layers.1.attn')
    kept = vars(attention)['scaled_dot_product_attention']
    taps = TapRecorder(model, ['qkv:backbone.layers.1.attn', 'model.backbone.layers.1.attn.qkv'])
    spec = taps.probe(SIZE)['qkv:backbone.layers.1.attn']
    assert (spec.kind, spec.shape, spec.num_prefix, spec.grid) == ('tokens', (17, 3 * 32), 1, (4, 4))
    taps.start()
    with torch.no_grad():
        model(torch.randn(2, *SIZE))
    features = taps.collect()
    # q, k, v laid out as the qkv Linear's output: the captured call holds exactly that projection
    assert torch.equal(features['qkv:backbone.layers.1.attn'].data, features['model.backbone.layers.1.attn.qkv'].data)
    assert vars(attention)['scaled_dot_product_attention'] is kept  # put back after the forward


def test_a_failing_forward_puts_both_attention_functions_back():
    import torch.nn.functional as F
    model = MMPretrainClassifier(vit_cfg()).eval()
    attention = model.get_submodule('model.backbone.layers.1.attn')
    kept, global_sdpa = vars(attention)['scaled_dot_product_attention'], F.scaled_dot_product_attention
    taps = TapRecorder(model, ['qkv:backbone.layers.1.attn'])
    taps.probe(SIZE)

    def fail(module, args, output):
        raise RuntimeError('failed inside the attention')
    attention.qkv.register_forward_hook(fail)
    taps.start()
    with pytest.raises(RuntimeError, match='failed inside the attention'):
        model(torch.randn(2, *SIZE))
    taps.stop()
    assert vars(attention)['scaled_dot_product_attention'] is kept and F.scaled_dot_product_attention is global_sdpa


def test_cakd_takes_an_mmpretrain_vit_teacher():
    from mmpretrain.structures import DataSample

    from kdzoo.models import DistillModel
    student = dict(type='TimmClassifier', model_name='resnet10t', num_classes=10, channels=(8, 16, 32, 64),
                   stem_width=8)
    teacher = dict(type='MMPretrainClassifier', model=vit_cfg(patch_size=4))  # an 8x8 grid, as stage1's
    model = DistillModel(student=student, teachers=dict(t=teacher), input_size=SIZE,
                         distillers=[dict(type='cakd', student_stage='stage1', schedule=None, teacher='t')]).train()
    losses = model.loss(torch.randn(2, *SIZE), [DataSample().set_gt_label(i) for i in range(2)])
    total = sum(v.sum() for v in losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in model.teachers['t'].parameters())


def tiny_conformer(**kwargs):
    return MMPretrainClassifier(dict(
        type='ImageClassifier', neck=None,
        backbone=dict(type='Conformer', arch=dict(embed_dims=32, depths=3, num_heads=2, channel_ratio=1),
                      base_channels=8),
        head=dict(type='ConformerHead', num_classes=10, in_channels=[32, 32])), **kwargs)


def test_a_head_with_one_logit_tensor_per_classifier_gives_their_mean():
    model = tiny_conformer().eval()
    x = torch.randn(2, *SIZE)
    with torch.no_grad():
        conv, trans = model.model(x, mode='tensor')
        assert torch.allclose(model(x), (conv + trans) / 2)
    assert TapRecorder(model, ['logits']).probe(SIZE)['logits'].shape == (10,)


def test_a_two_head_mmpretrain_model_names_its_heads_for_pre_logits():
    with pytest.raises(KeyError, match=r"combines the logits of 2 heads \('model.head.conv_cls_head' \(Linear 32 -> "
                                       r"10\), 'model.head.trans_cls_head' .*Pass classifier='head.trans_cls_head'"):
        TapRecorder(tiny_conformer(), ['pre_logits'])
    chosen = tiny_conformer(classifier='head.trans_cls_head')
    assert TapRecorder(chosen, ['pre_logits']).probe(SIZE)['pre_logits'].shape == (32,)


PVT_TINY = dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], patch_sizes=[4, 2, 2, 2],
                strides=[4, 2, 2, 2], mlp_ratios=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1])


@pytest.mark.parametrize('backbone, stages, stage4', [
    # a ModuleList of blocks per stage never runs itself: its last block is the stage
    (dict(type='PCPVT', arch=PVT_TINY), ['stages.0.0', 'stages.1.0', 'stages.2.0', 'stages.3.0'], (1, 64)),
    # stage names listed as strings (``layers``), cut with the plain block rule
    (dict(type='MobileNetV2', widen_factor=0.25), ['layer1', 'layer3', 'layer7', 'conv2'], (1280, 1, 1)),
    # numbered children (blocks1 ... blocks4), each a ModuleList
    (dict(type='VAN', arch=dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 2, 1], ffn_ratios=[2, 2, 2, 2])),
     ['blocks1.0', 'blocks2.0', 'blocks3.1', 'blocks4.0'], (64, 1, 1)),
    # a Sequential of stages
    (dict(type='MobileViT', arch='xx_small'), ['layers.0', 'layers.1', 'layers.3', 'layers.4'], (80, 1, 1)),
])
def test_mmpretrain_stages_are_modules_that_run(backbone, stages, stage4):
    from mmpretrain.registry import MODELS
    with torch.no_grad():
        net = MODELS.build(dict(backbone, _scope_='mmpretrain'))
        net.eval()
        channels = net(torch.zeros(1, *SIZE))[-1].shape[1]
    model = MMPretrainClassifier(dict(type='ImageClassifier', backbone=backbone,
                                      neck=dict(type='GlobalAveragePooling'),
                                      head=dict(type='LinearClsHead', num_classes=10, in_channels=channels)))
    assert model.kdzoo_taps.stages == tuple(f'model.backbone.{path}' for path in stages)
    assert TapRecorder(model, ['stage4']).probe(SIZE)['stage4'].shape == stage4
