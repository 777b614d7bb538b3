import re

import pytest
import torch

from kdzoo.models import ImportedModel, TimmClassifier
from kdzoo.taps import TapRecorder
from kdzoo.taps.stages import plain_stage_blocks

SIZE = (3, 32, 32)
TINY_CNN = dict(type='TimmClassifier', model_name='resnet10t', num_classes=10, channels=(8, 8, 8, 8), stem_width=8)
FAMILIES = {
    'resnet': dict(model_name='resnet18'),
    'mobilenetv2': dict(model_name='mobilenetv2_050'),
    'convnext': dict(model_name='convnext_atto'),
    'regnety': dict(model_name='regnety_002'),
    'vit': dict(model_name='vit_tiny_patch16_224', img_size=32, patch_size=4),
    'deit': dict(model_name='deit_tiny_patch16_224', img_size=32, patch_size=4),
    'swin': dict(model_name='swin_tiny_patch4_window7_224', img_size=32, patch_size=2, window_size=4),
    'mixer': dict(model_name='timm.models.mlp_mixer.MlpMixer', img_size=32, patch_size=4, num_blocks=12,
                  embed_dim=64),
    'resmlp': dict(model_name='timm.models.mlp_mixer.MlpMixer', img_size=32, patch_size=4, num_blocks=12,
                   embed_dim=64, mlp_ratio=4),  # ResBlock / Affine are passed as classes in build()
}
# (kind, stage shapes without batch) expected at 32x32 input
EXPECTED = {
    'resnet': ('map', [(64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1)]),
    'mobilenetv2': ('map', [(16, 8, 8), (16, 4, 4), (48, 2, 2), (160, 1, 1)]),
    'convnext': ('map', [(40, 8, 8), (80, 4, 4), (160, 2, 2), (320, 1, 1)]),
    'regnety': ('map', [(24, 8, 8), (56, 4, 4), (152, 2, 2), (368, 1, 1)]),
    'vit': ('tokens', [(65, 192)] * 4),
    'deit': ('tokens', [(65, 192)] * 4),
    'swin': ('map', [(96, 16, 16), (192, 8, 8), (384, 4, 4), (768, 2, 2)]),
    'mixer': ('tokens', [(64, 64)] * 4),
    'resmlp': ('tokens', [(64, 64)] * 4),
}


def build(family):
    cfg = dict(FAMILIES[family])
    if family == 'resmlp':
        from timm.models.mlp_mixer import Affine, ResBlock
        cfg.update(block_layer=ResBlock, norm_layer=Affine)
    return TimmClassifier(num_classes=10, **cfg)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_stage_taps_on_timm_families(family):
    model = build(family)
    taps = ['logits', 'pre_logits', 'stage1', 'stage2', 'stage3', 'stage4']
    recorder = TapRecorder(model, taps)
    specs = recorder.probe(SIZE)
    kind, shapes = EXPECTED[family]
    assert [specs[f'stage{i}'].kind for i in range(1, 5)] == [kind] * 4
    assert [specs[f'stage{i}'].shape for i in range(1, 5)] == shapes
    assert specs['logits'].shape == (10,)
    assert specs['pre_logits'].kind == 'vector'

    x = torch.randn(2, *SIZE)
    model.eval()
    recorder.start()
    logits = model(x)
    features = recorder.collect()
    assert torch.equal(features['logits'].data, logits)
    for i in range(1, 5):
        feature = features[f'stage{i}']
        assert feature.as_map().dim() == 4 and feature.patch_tokens().dim() == 3
    # pre_logits is exactly what the classifier saw
    classifier = model.get_submodule(model.kdzoo_classifier)
    assert torch.allclose(classifier(features['pre_logits'].data), logits, atol=1e-5)


def test_vit_stage_rule_and_prefix_tokens():
    model = build('vit')
    assert model.kdzoo_stages == ['model.blocks.1', 'model.blocks.3', 'model.blocks.9', 'model.blocks.11']
    recorder = TapRecorder(model, ['stage4'])
    spec = recorder.probe(SIZE)['stage4']
    assert spec.num_prefix == 1 and spec.grid == (8, 8)
    recorder.start()
    model.eval()
    model(torch.randn(2, *SIZE))
    feature = recorder.collect()['stage4']
    assert torch.equal(feature.patch_tokens(), feature.data[:, 1:])
    assert feature.as_map().shape == (2, 192, 8, 8)
    # token i of the patch grid is pixel (i // 8, i % 8) of the map
    assert torch.equal(feature.as_map()[:, :, 2, 5], feature.data[:, 1 + 2 * 8 + 5])


def test_swin_nhwc_is_normalised_to_nchw():
    model = build('swin')
    recorder = TapRecorder(model, ['stage2'])
    recorder.probe(SIZE)
    raw = {}
    handle = model.model.layers[1].register_forward_hook(lambda m, a, o: raw.setdefault('x', o))
    recorder.start()
    model.eval()
    model(torch.randn(2, *SIZE))
    feature = recorder.collect()['stage2']
    handle.remove()
    assert raw['x'].shape == (2, 8, 8, 192)
    assert torch.equal(feature.as_map(), raw['x'].permute(0, 3, 1, 2))


def test_plain_block_rule():
    assert plain_stage_blocks(12) == [2, 4, 10, 12]
    assert plain_stage_blocks(6) == [1, 2, 5, 6]
    assert plain_stage_blocks(4) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match='cannot be split'):
        plain_stage_blocks(3)


def test_attention_tap_returns_probabilities():
    model = build('vit')
    recorder = TapRecorder(model, ['attn:blocks.11.attn'])
    spec = recorder.probe(SIZE)['attn:blocks.11.attn']
    assert spec.kind == 'attn' and spec.shape == (3, 65, 65)
    model.eval()
    recorder.start()
    model(torch.randn(2, *SIZE))
    attn = recorder.collect()['attn:blocks.11.attn'].data
    assert torch.allclose(attn.sum(-1), torch.ones(2, 3, 65), atol=1e-5)


def test_user_module_by_path_and_stage_override():
    model = ImportedModel('tiny_models:TinyConvNet', stages=['features.2', 'features.5', 'features.8'])
    recorder = TapRecorder(model, ['features.5', 'stage3', 'pre_logits'])
    specs = recorder.probe((1, 16, 16))
    assert specs['features.5'].shape == (16, 8, 8)
    assert specs['stage3'].shape == (32, 4, 4)
    assert specs['pre_logits'].shape == (32,)


def test_hooks_are_removed_and_only_record_when_asked():
    model = build('resnet')
    recorder = TapRecorder(model, ['stage1', 'stage3'])
    layer1 = model.model.layer1
    assert len(layer1._forward_hooks) == 1
    model(torch.randn(2, *SIZE))           # outside recording: nothing is kept
    assert recorder._raw is None
    recorder.remove()
    assert len(layer1._forward_hooks) == 0 and len(model.model.layer3._forward_hooks) == 0


def test_unknown_tap_names_list_choices():
    model = build('resnet')
    with pytest.raises(KeyError, match="has 4 stages.*Available: logits, pre_logits, stage1"):
        TapRecorder(model, ['stage7'])
    with pytest.raises(KeyError, match='Closest module paths: model.layer1'):
        TapRecorder(model, ['model.layr1'])
    with pytest.raises(KeyError, match='attn_drop'):
        TapRecorder(model, ['attn:layer1'])


def test_recorder_unwraps_ddp_style_wrappers():
    from mmengine.model import MMDistributedDataParallel  # noqa: F401  (registers the wrapper type)

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    model = build('resnet')
    from mmengine.registry import MODEL_WRAPPERS
    MODEL_WRAPPERS.register_module(module=Wrapper, force=True)
    recorder = TapRecorder(Wrapper(model), ['stage2'])
    assert recorder.model is model


def test_mmpretrain_classifier_declares_resnet_stages():
    from kdzoo.models import MMPretrainClassifier
    model = MMPretrainClassifier(dict(
        type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
        neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=10, in_channels=512)))
    specs = TapRecorder(model, ['stage1', 'stage4', 'pre_logits', 'logits']).probe(SIZE)
    assert specs['stage1'].shape == (64, 8, 8) and specs['stage4'].shape == (512, 1, 1)
    assert specs['pre_logits'].shape == (512,) and specs['logits'].shape == (10,)


# ------------------------------------------------------------------ issue 12: taps that hold on any model
def test_probe_names_a_tapped_module_that_never_runs():
    # EVA-02 applies its qkv Linear with F.linear(x, self.qkv.weight, bias): a hook on `qkv` never fires
    eva = TimmClassifier('eva02_tiny_patch14_224', num_classes=10, img_size=28, depth=2)
    with pytest.raises(RuntimeError, match=r"tap 'model.blocks.0.attn.qkv' reads 'model.blocks.0.attn.qkv' "
                                           r"\(Linear\), which was never called during the forward.*F.linear"
                                           r".*its parent 'model.blocks.0.attn'.*'qkv:<attention path>'"):
        TapRecorder(eva, ['model.blocks.0.attn.qkv']).probe((3, 28, 28))
    with pytest.raises(RuntimeError, match=r"'model.blocks', a ModuleList container.*'model.blocks.0', "
                                           r"'model.blocks.1'"):
        TapRecorder(eva, ['model.blocks']).probe((3, 28, 28))
    # the q, k, v it hands to F.scaled_dot_product_attention are read instead (RoPE and all)
    spec = TapRecorder(eva, ['qkv:blocks.1.attn']).probe((3, 28, 28))['qkv:blocks.1.attn']
    assert (spec.kind, spec.shape, spec.num_prefix, spec.grid) == ('tokens', (5, 3 * 192), 1, (2, 2))


class TwoOutputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y, y[:, :2].flatten(2).transpose(1, 2)


def test_multi_branch_outputs_need_a_selector():
    model = torch.nn.Sequential(TwoOutputs())
    model.forward = lambda x: model[0](x)[0].mean((2, 3))
    with pytest.raises(TypeError, match=r"tap '0' \(0\) returns 2 branches: \[0\] \(2, 4, 8, 8\), "
                                        r"\[1\] \(2, 64, 2\).*Select one with '0\[i\]'"):
        TapRecorder(model, ['0']).probe((3, 8, 8))
    specs = TapRecorder(model, ['0[0]', '0[1]']).probe((3, 8, 8))
    assert specs['0[0]'].shape == (4, 8, 8) and specs['0[1]'].shape == (64, 2)
    with pytest.raises(IndexError, match=r"selects branch \[2\], but the module returns 2 branches"):
        TapRecorder(model, ['0[2]']).probe((3, 8, 8))


def test_crossvit_stages_select_one_branch_explicitly():
    model = TimmClassifier('crossvit_tiny_240', num_classes=10)
    assert model.kdzoo_taps.stages == ('model.blocks.0[1]', 'model.blocks.1[1]', 'model.blocks.2[1]')
    assert model.kdzoo_taps.stage_channels == (192, 192, 192)
    with pytest.raises(KeyError, match=r"TimmClassifier of CrossVit has no single classifier: it combines the "
                                       r"logits of 2 heads \('model.head.0' \(Linear 96 -> 10\), 'model.head.1' "
                                       r"\(Linear 192 -> 10\)\).*read by ofa.*rkd.*Pass classifier='head.1'"):
        TapRecorder(model, ['pre_logits'])
    model = TimmClassifier('crossvit_tiny_240', num_classes=10, classifier='head.1')
    assert TapRecorder(model, ['pre_logits']).probe((3, 240, 240))['pre_logits'].shape == (192,)


def test_levit_two_heads_name_the_classifier_argument_that_works():
    from mmpretrain.structures import DataSample

    from kdzoo.models import DistillModel
    levit = dict(type='TimmClassifier', model_name='levit_128s', num_classes=10, img_size=32)
    student = TINY_CNN
    with pytest.raises(KeyError, match=r"LevitDistilled has no single classifier.*Pass classifier='head_dist'"):
        DistillModel(student=student, teachers=dict(t=levit), distillers=[dict(type='rkd')], input_size=SIZE)
    model = DistillModel(student=student, teachers=dict(t=dict(levit, classifier='head_dist')),
                         distillers=[dict(type='rkd')], input_size=SIZE)
    model.train()
    losses = model.loss(torch.randn(2, *SIZE), [DataSample().set_gt_label(i) for i in range(2)])
    assert torch.isfinite(sum(losses.values()))


def test_hrnet_stages_match_timm_feature_info():
    model = TimmClassifier('hrnet_w18_small', num_classes=10)
    specs = TapRecorder(model, ['stage1', 'stage2', 'stage3', 'stage4']).probe((3, 64, 64))
    timm_channels = [info['num_chs'] for info in model.model.feature_info[-4:]]
    assert timm_channels == [128, 256, 512, 1024]
    assert [specs[f'stage{i}'].shape for i in range(1, 5)] == [(128, 16, 16), (256, 8, 8), (512, 4, 4),
                                                              (1024, 2, 2)]
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model(x), model.model(x), atol=1e-5)   # the intermediates path is the model's forward


def test_a_module_dict_with_its_own_forward_is_hooked_directly():
    from kdzoo.taps.contract import is_container
    # timm's DenseBlock is an nn.ModuleDict with a forward
    model = TimmClassifier('densenet121', num_classes=10, growth_rate=8, block_config=(1, 1, 1, 1))
    assert not is_container(model.model.features.denseblock1) and is_container(torch.nn.ModuleList())
    assert model.kdzoo_taps.stages == ('model.features.denseblock1', 'model.features.denseblock2',
                                       'model.features.denseblock3', 'model.features.norm5')
    specs = TapRecorder(model, ['stage1', 'stage4']).probe((3, 32, 32))
    assert (specs['stage1'].channels, specs['stage4'].channels) == model.kdzoo_taps.stage_channels[::3]


def test_twins_stages_come_from_forward_intermediates():
    model = TimmClassifier('twins_svt_small', num_classes=10, img_size=64, depths=(1, 1, 1, 1))
    assert model.kdzoo_taps.stages == tuple(f'stage_outputs.{i}' for i in range(4))
    specs = TapRecorder(model, ['stage1', 'stage4']).probe((3, 64, 64))
    assert specs['stage1'].shape == (64, 16, 16) and specs['stage4'].shape == (512, 2, 2)
    with pytest.raises(ValueError, match=r"stages path 'model.blocks.0' is a ModuleList.*pass stages="):
        TimmClassifier('twins_svt_small', num_classes=10, img_size=64, depths=(1, 1, 1, 1),
                       stages=['blocks.0', 'blocks.1'])


AFP_ON_INTERMEDIATES = {  # teacher read through forward_intermediates -> the stage inputs a traced forward finds
    'hrnet': (dict(model_name='hrnet_w18_small'),
              ['incre_modules.0', 'incre_modules.1', 'incre_modules.2', 'incre_modules.3']),
    'twins': (dict(model_name='twins_svt_small', img_size=64, depths=(1, 1, 1, 1)),
              ['pos_block.0', 'patch_embeds.1.norm', 'patch_embeds.2.norm', 'patch_embeds.3.norm']),
}


@pytest.mark.parametrize('family', list(AFP_ON_INTERMEDIATES))
def test_afp_on_forward_intermediates_stages_names_the_stage_inputs(family):
    from mmpretrain.structures import DataSample

    from kdzoo.models import DistillModel
    teacher, inputs = AFP_ON_INTERMEDIATES[family]
    build = dict(student=TINY_CNN,
                 teachers=dict(t=dict(type='TimmClassifier', num_classes=10, **teacher)),
                 distillers=[dict(type='fofa', num_queries=4, dim=8)], input_size=(3, 64, 64))
    with pytest.raises(ValueError, match=r"afp: the inputs AFP would prompt for \['stage2', 'stage3', 'stage4'\] "
                                         r"are not the previous stages' outputs: the stages \['stage_outputs.0'.*"
                                         r"only observe timm's forward_intermediates.*pass insert_before="
                                         + re.escape(str(inputs))):
        DistillModel(adapters=[dict(type='afp', target='t')], **build)
    model = DistillModel(adapters=[dict(type='afp', target='t', insert_before=inputs)], **build)
    model.train()
    losses = model.loss(torch.randn(2, 3, 64, 64), [DataSample().set_gt_label(i) for i in range(2)])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is None for p in model.teachers.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student.parameters())


def test_stage_channels_are_checked_against_feature_info():
    from kdzoo.taps import TapContract
    model = build('resnet')
    from dataclasses import replace
    model.kdzoo_taps = replace(model.kdzoo_taps, stage_channels=(64, 128, 256, 999))
    with pytest.raises(ValueError, match=r"stage4 \(model.layer4\) gives stage4: map \(512, 1, 1\).*feature_info "
                                         r"says that stage has 999 channels; pass stages="):
        TapRecorder(model, ['stage4']).probe(SIZE)
    assert isinstance(model.kdzoo_taps, TapContract)


def test_a_model_without_stages_names_the_argument():
    model = ImportedModel('tiny_models:TinyConvNet')
    with pytest.raises(KeyError, match=r"has 0 stages \(TinyConvNet declares no stages.*\).*pass "
                                       r"stages=\[...\].*or ask the method only for stages it has \(its stages= "
                                       r"/ student_stage= argument\).*model.features: Sequential"):
        TapRecorder(model, ['stage1'])
    assert TapRecorder(model, ['pre_logits']).probe((1, 16, 16))['pre_logits'].shape == (32,)


def test_imported_model_without_stages_as_fofa_teacher():
    from kdzoo.models import DistillModel
    with pytest.raises(ValueError, match=r"afp: ImportedModel declares no stages.*pass stages=\[...\]"):
        DistillModel(student=dict(type='ImportedModel', path='tiny_models:TinyConvNet', stages=['features.5']),
                     teachers=dict(t=dict(type='ImportedModel', path='tiny_models:TinyConvNet')),
                     distillers=[dict(type='fofa', num_queries=4, dim=8)], adapters=[dict(type='afp', target='t')],
                     input_size=(1, 16, 16))


def test_mmpretrain_vit_tokens_classifier_and_overrides():
    from kdzoo.models import MMPretrainClassifier
    cfg = dict(type='ImageClassifier',
               backbone=dict(type='VisionTransformer', arch='deit-tiny', img_size=32, patch_size=4),
               neck=None, head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=192))
    model = MMPretrainClassifier(cfg)
    contract = model.kdzoo_taps
    assert contract.prefix_tokens == 1 and contract.grid == (8, 8)
    assert contract.classifier == 'model.head.layers.head'
    assert contract.stages == ('model.backbone.layers.1', 'model.backbone.layers.3', 'model.backbone.layers.9',
                               'model.backbone.layers.11')
    specs = TapRecorder(model, ['stage4', 'pre_logits', 'logits']).probe(SIZE)
    assert specs['stage4'].shape == (65, 192) and specs['stage4'].num_prefix == 1 and specs['stage4'].grid == (8, 8)
    assert specs['pre_logits'].shape == (192,) and specs['logits'].shape == (10,)
    override = MMPretrainClassifier(cfg, stages=['backbone.layers.5'], classifier='head.layers.head', grid=(8, 8))
    assert override.kdzoo_taps.stages == ('model.backbone.layers.5',)


def no_token_attention(model):
    return (r".*Token attention \(what CAKD reads\).*\. TimmClassifier of " + model + r" has no global token "
            r"attention that kdzoo can read: none of its attention modules .* no teacher_attention= can help .* Use a teacher with "
            r"global token attention, e\.g\. a plain ViT / DeiT")


NOT_TOKEN_ATTENTION = {  # teacher, CAKD arguments, input side -> what the error says it found, and what to do
    'xcit_xca': (dict(model_name='xcit_nano_12_p16_224', img_size=32, depth=2), dict(teacher_attention='blocks.1.attn'),
                 32, r"XCA at 'model.blocks.1.attn' is not token-to-token attention: its queries run over 32 "
                     r"positions, not the 4 tokens \(channel attention" + no_token_attention('Xcit')),
    'xcit_default': (dict(model_name='xcit_nano_12_p16_224', img_size=32, depth=2), {}, 32,
                     r"ClassAttn at 'model.cls_attn_blocks.1.attn' is not token-to-token attention: its queries run "
                     r"over 1 positions" + no_token_attention('Xcit')),
    # TinyViT pads the 2x2 grid of its last stage at 64 px to one 7x7 window: 49 tokens, one "window" per image
    'tiny_vit': (dict(model_name='tiny_vit_5m_224', depths=(1, 1, 1, 1), embed_dims=(16, 32, 64, 64),
                      num_heads=(1, 2, 2, 2)), {}, 64,
                 r"windowed attention: it attends over 49 tokens at a time, but its block's input \(2, 2, 2, 64\) "
                 r"holds 4 tokens per image \(its block's window_size is 7\): a window padded beyond the token "
                 r"grid" + no_token_attention('TinyVit')),
    # Swin's first stages attend within windows; its last two stages fit in one window: global attention
    'swin': (dict(model_name='swin_tiny_patch4_window7_224', img_size=32, patch_size=2, window_size=4,
                  depths=(1, 1, 1, 1)), dict(teacher_attention='layers.0.blocks.0.attn'), 32,
             r"it attends within 32 groups for a batch of 2 images \(windowed.*token-attention modules "
             r"\(deepest last\): 'model.layers.2.blocks.0.attn', 'model.layers.3.blocks.0.attn'; pass "
             r"teacher_attention='model.layers.3.blocks.0.attn'"),
}


@pytest.mark.parametrize('case', list(NOT_TOKEN_ATTENTION))
def test_cakd_refuses_attention_that_is_not_token_attention(case):
    from kdzoo.models import DistillModel
    student = TINY_CNN
    teacher, extra, side, found = NOT_TOKEN_ATTENTION[case]
    with pytest.raises(ValueError, match=found) as error:
        DistillModel(student=student, teachers=dict(t=dict(type='TimmClassifier', num_classes=10, **teacher)),
                     distillers=[dict(type='cakd', student_stage='stage2', **extra)], input_size=(3, side, side))
    assert 'student_stage' not in str(error.value)


def test_cakd_on_attention_that_never_calls_sdpa_says_the_model_has_none():
    from kdzoo.models import DistillModel
    student = TINY_CNN
    twins = dict(type='TimmClassifier', model_name='twins_svt_small', num_classes=10, img_size=64,
                 depths=(1, 1, 1, 1))   # one locally grouped attention per stage, computed without SDPA
    with pytest.raises(RuntimeError, match=r"LocallyGroupedAttn at 'model.blocks.3.0.attn' made no "
                                           r"F.scaled_dot_product_attention call.*TimmClassifier of Twins has no "
                                           r"global token attention that kdzoo can read.*no teacher_attention= can help.*a plain ViT"):
        DistillModel(student=student, teachers=dict(t=twins), distillers=[dict(type='cakd')],
                     input_size=(3, 64, 64))


def test_cakd_final_tokens_skip_a_container_of_branch_norms():
    from kdzoo.methods.cakd.distiller import find_teacher_attention
    crossvit = TimmClassifier('crossvit_tiny_240', num_classes=10)   # its `norm` is a ModuleList, one per branch
    geometry = find_teacher_attention(crossvit, 't')
    assert geometry.qkv_tap == 'qkv:model.blocks.2.blocks.1.3.attn'
    assert geometry.tokens_tap == 'model.blocks.2.blocks.1.3'


def test_cakd_takes_a_suggested_swin_attention():
    from mmpretrain.structures import DataSample

    from kdzoo.models import DistillModel
    model = DistillModel(
        student=TINY_CNN,
        teachers=dict(t=dict(type='TimmClassifier', num_classes=10, **NOT_TOKEN_ATTENTION['swin'][0])),
        distillers=[dict(type='cakd', student_stage='stage3', teacher_attention='model.layers.3.blocks.0.attn',
                         teacher_tokens='model.layers.3.blocks.0.attn', weights=dict(adv=0),
                         schedule=None)],
        input_size=(3, 32, 32))
    assert model.distillers[0].geometry.qkv_tap == 'qkv:model.layers.3.blocks.0.attn'
    model.train()
    losses = model.loss(torch.randn(2, 3, 32, 32), [DataSample().set_gt_label(i) for i in range(2)])
    sum(losses.values()).backward()
    assert model.distillers[0].qkv.q.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teachers.parameters())


def test_cakd_reads_eva_fused_qkv_and_routes_gradients():
    from mmpretrain.structures import DataSample

    from kdzoo.models import DistillModel
    model = DistillModel(
        student=TINY_CNN,
        teachers=dict(t=dict(type='TimmClassifier', model_name='eva02_tiny_patch14_224', num_classes=10,
                             img_size=56, depth=2)),
        distillers=[dict(type='cakd', student_stage='stage3', schedule=None, discriminator_layers=2)],
        input_size=(3, 56, 56))
    assert model.distillers[0].geometry.qkv_tap == 'qkv:model.blocks.1.attn'
    model.train()
    losses = model.loss(torch.randn(2, 3, 56, 56), [DataSample().set_gt_label(i) for i in range(2)])
    sum(losses.values()).backward()
    assert model.distillers[0].qkv.q.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teachers.parameters())


def test_legacy_attributes_still_work_with_a_deprecation_warning():
    class Legacy(torch.nn.Module):
        kdzoo_stages = ['0']
        kdzoo_classifier = '2'

        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList()
            self.add_module('0', torch.nn.Conv2d(3, 4, 3))
            self.add_module('1', torch.nn.Flatten())
            self.add_module('2', torch.nn.Linear(4 * 6 * 6, 10))

        def forward(self, x):
            return self._modules['2'](self._modules['1'](self._modules['0'](x)))

    with pytest.warns(DeprecationWarning, match='kdzoo_taps'):
        specs = TapRecorder(Legacy(), ['stage1', 'pre_logits']).probe((3, 8, 8))
    assert specs['stage1'].shape == (4, 6, 6) and specs['pre_logits'].shape == (144,)


def test_docs_user_module_contract_example(tmp_path, monkeypatch, capsys):
    import runpy

    from run_helpers import markdown_examples
    for name, code in markdown_examples('docs/taps.md').items():
        (tmp_path / name).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    runpy.run_path(str(tmp_path / 'two_stage_net.py'), run_name='__main__')
    assert ("'stage2': 'stage2: map (16, 8, 8)'" in capsys.readouterr().out)
    from two_stage_net import TwoStageNet
    with pytest.raises(TypeError, match=r"returns 2 branches: \[0\] \(2, 16, 8, 8\), \[1\] \(2, 1, 8, 8\)"):
        TapRecorder(TwoStageNet(), ['body']).probe((3, 32, 32))


# Every model kdzoo registers, as a config that builds it; the margin heads and DistillModel are not models
# whose features are tapped. A newly registered model must be added here (the test checks the coverage).
NOT_TAPPED = {'ArcFaceHead', 'CombinedMarginHead', 'CosFaceHead', 'PartialFC', 'DistillModel'}
REGISTERED_MODELS = {
    'FaceRecognizer': dict(backbone=dict(type='mobilefacenet')),
    'FaceSwin': dict(arch='tiny'), 'FaceViT': dict(arch='tiny'), 'IResNet': dict(depth=18),
    'MobileFaceNet': {}, 'RedNet': dict(depth=26, num_classes=10),
    'TimmClassifier': dict(model_name='resnet10t', num_classes=10),
    'ImportedModel': dict(path='kdzoo.models.involution:rednet26', num_classes=10),
    'MMPretrainClassifier': dict(model=dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
                                            neck=dict(type='GlobalAveragePooling'),
                                            head=dict(type='LinearClsHead', num_classes=10, in_channels=512))),
}


def tapped_model_names():
    from kdzoo.registry import MODELS
    return sorted(set(MODELS.module_dict) - NOT_TAPPED)


@pytest.mark.parametrize('name', tapped_model_names())
def test_no_kdzoo_model_uses_the_deprecated_tap_attributes(name, monkeypatch):
    import warnings

    import kdzoo.taps.contract as contract_module
    from kdzoo.registry import MODELS
    from kdzoo.taps import TapContract, contract_of
    monkeypatch.setattr(contract_module, '_warned', set())  # warn again for types warned by earlier tests
    small_real = name in ('TimmClassifier', 'ImportedModel', 'MMPretrainClassifier')
    with warnings.catch_warnings():
        warnings.filterwarnings('error', category=DeprecationWarning, message='.*declares its taps')
        with torch.device('cpu' if small_real else 'meta'):  # the face models at full size, without memory
            model = MODELS.build(dict(type=name, **REGISTERED_MODELS.get(name, {})))
        declared = getattr(model, 'kdzoo_taps', None)
        assert isinstance(declared, TapContract), f"{name} declares no kdzoo_taps TapContract"
        assert contract_of(model).stages, f"{name} declares no stages"


def test_docs_new_tap_form_example(tmp_path, monkeypatch, capsys):
    """docs/taps.md, Extending taps: the 'input:' tap form registered by a user module, run as written."""
    import runpy

    from kdzoo.taps import recorder
    from run_helpers import markdown_examples
    monkeypatch.setattr(recorder, 'TAP_PREFIXES', dict(recorder.TAP_PREFIXES))  # the example registers one
    (tmp_path / 'input_taps.py').write_text(markdown_examples('docs/taps.md')['input_taps.py'])
    runpy.run_path(str(tmp_path / 'input_taps.py'), run_name='__main__')
    assert "'input:model.fc': 'input:model.fc: vector (128,)'" in capsys.readouterr().out
    from kdzoo.models import build_model
    student = build_model(dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
                               channels=(16, 32, 64, 128), stem_width=16)).eval()
    taps = TapRecorder(student, ['stage1', 'input:stage2', 'pre_logits', 'input:model.fc'])
    taps.probe((1, 32, 32))
    taps.start()
    with torch.no_grad():
        student(torch.randn(2, 1, 32, 32))
    features = taps.collect()
    assert torch.equal(features['input:stage2'].data, features['stage1'].data)
    assert torch.equal(features['input:model.fc'].data, features['pre_logits'].data)
    with pytest.raises(KeyError, match="tap 'input:logits': name a module path or a stage"):
        recorder.resolve_tap(student, 'input:logits')
