import pytest
import torch

from kdzoo.models import ImportedModel, TimmClassifier
from kdzoo.taps import TapRecorder
from kdzoo.taps.stages import plain_stage_blocks

SIZE = (3, 32, 32)
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
