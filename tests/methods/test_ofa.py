"""OFA: golden ε losses against numpy (docs/methods/ofa.md, docs/methods/conventions.md), exit-branch structure, gradients."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from kdzoo.methods import OFA
from kdzoo.methods.ofa.distiller import ConvExit, SepConv, TokenExit, TokenPatchMerging, ofa_loss
from kdzoo.taps import Feature, FeatureSpec
from tiny_models import (DEIT_STUDENT_32 as DEIT_STUDENT, RESNET18 as RESNET,
                         VIT_TEACHER_32 as VIT_TEACHER, check_gradient_routing)

BATCH = 3
STUDENT_LOGITS = np.array([[2.0, -1.0, 0.5, 0.0, 1.5],
                           [-0.3, 0.8, 2.2, -1.7, 0.1],
                           [1.1, 1.0, -2.0, 0.4, -0.6]])
TEACHER_LOGITS = np.array([[3.0, 0.5, -1.0, 0.2, 1.0],
                           [0.0, 0.3, 4.0, -2.0, -0.5],
                           [-1.0, 2.5, 0.0, 1.2, 0.3]])
LABELS = np.array([0, 2, 1])


# ----------------------------------------------------------------------------------------------- helpers
def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def numpy_ofa(student, teacher, labels, eps, temperature=1.0, modulate_nontarget=True):
    """mean_b −Σ_c w_c log p^s_c with w from the OFA code (or the paper-only target modulation)."""
    p_s, p_t = softmax(student / temperature), softmax(teacher / temperature)
    total = 0.0
    for b in range(student.shape[0]):
        for c in range(student.shape[1]):
            if c == labels[b]:
                weight = (p_t[b, c] + 1) ** eps - 1
            else:
                weight = p_t[b, c] ** eps if modulate_nontarget else p_t[b, c]
            total -= weight * np.log(p_s[b, c])
    return total / student.shape[0]


def torch_ofa(eps, temperature=1.0, modulate_nontarget=True, student=STUDENT_LOGITS, teacher=TEACHER_LOGITS):
    return ofa_loss(torch.from_numpy(student), torch.from_numpy(teacher), torch.from_numpy(LABELS), eps,
                    temperature, modulate_nontarget).item()


def fake(name, kind, shape, num_prefix=0, grid=None, batch=BATCH):
    spec = FeatureSpec(name, kind, tuple(shape), num_prefix, grid or (tuple(shape[1:]) if kind == 'map' else None))
    return Feature(torch.randn(batch, *shape), spec)


def vector_spec(name, width):
    return FeatureSpec(name, 'vector', (width,))


def built_ofa(stage_specs, student_width, teacher_width, logit_width=5, **kwargs):
    """An OFA distiller built from fake probed specs: {stage: FeatureSpec}."""
    distiller = OFA(stages=tuple(stage_specs), **kwargs)
    distiller.bind(['teacher'])
    student_specs = {f'stage{k}': spec for k, spec in stage_specs.items()}
    student_specs.update(logits=vector_spec('logits', logit_width),
                         pre_logits=vector_spec('pre_logits', student_width))
    teacher_specs = dict(logits=vector_spec('logits', logit_width),
                         pre_logits=vector_spec('pre_logits', teacher_width))
    distiller.build(student_specs, teacher_specs)
    return distiller


# ------------------------------------------------------------------------------------------------ golden
def test_eps_one_is_soft_cross_entropy_with_teacher_probabilities():
    soft_ce = -np.mean(np.sum(softmax(TEACHER_LOGITS) * np.log(softmax(STUDENT_LOGITS)), axis=1))
    assert torch_ofa(1.0) == pytest.approx(soft_ce, rel=1e-12)
    assert torch_ofa(1.0, modulate_nontarget=False) == pytest.approx(soft_ce, rel=1e-12)


@pytest.mark.parametrize('eps', [0.5, 1.5, 2.0])
@pytest.mark.parametrize('modulate_nontarget', [True, False])
def test_ofa_loss_matches_the_explicit_formula(eps, modulate_nontarget):
    expected = numpy_ofa(STUDENT_LOGITS, TEACHER_LOGITS, LABELS, eps, modulate_nontarget=modulate_nontarget)
    assert torch_ofa(eps, modulate_nontarget=modulate_nontarget) == pytest.approx(expected, rel=1e-12)


def test_ofa_loss_with_temperature():
    expected = numpy_ofa(STUDENT_LOGITS, TEACHER_LOGITS, LABELS, 1.5, temperature=2.0)
    assert torch_ofa(1.5, temperature=2.0) == pytest.approx(expected, rel=1e-12)


def test_modulations_differ_only_off_the_target():
    """Non-target weights are p^ε in the code form, p in the paper form; target weights agree."""
    eps = 1.5
    p_t = softmax(TEACHER_LOGITS)
    gap = 0.0
    for b in range(BATCH):
        for c in range(5):
            if c != LABELS[b]:
                gap -= (p_t[b, c] ** eps - p_t[b, c]) * np.log(softmax(STUDENT_LOGITS)[b, c])
    difference = torch_ofa(eps) - torch_ofa(eps, modulate_nontarget=False)
    assert difference == pytest.approx(gap / BATCH, rel=1e-10)


def test_distiller_losses_use_per_exit_eps_and_final_weight():
    specs = {1: fake('stage1', 'map', (4, 8, 8)).spec, 3: fake('stage3', 'map', (8, 2, 2)).spec}
    distiller = built_ofa(specs, 16, 8, eps=[0.8, 1.2, 1.5], final_weight=0.5, temperature=2.0).double().eval()
    student = {f'stage{k}': Feature(torch.randn(BATCH, *spec.shape, dtype=torch.float64), spec)
               for k, spec in specs.items()}
    student['logits'] = Feature(torch.from_numpy(STUDENT_LOGITS), vector_spec('logits', 5))
    teacher = {'logits': Feature(torch.from_numpy(TEACHER_LOGITS), vector_spec('logits', 5))}
    losses = distiller.compute_losses(student, teacher, torch.from_numpy(LABELS))
    assert list(losses) == ['loss_ofa_stage1', 'loss_ofa_stage3', 'loss_ofa_final']
    for stage, eps in ((1, 0.8), (3, 1.2)):
        exit_logits = distiller.branches[f'stage{stage}'](student[f'stage{stage}']).detach().numpy()
        expected = numpy_ofa(exit_logits, TEACHER_LOGITS, LABELS, eps, temperature=2.0)
        assert losses[f'loss_ofa_stage{stage}'].item() == pytest.approx(expected, rel=1e-10)
    final = 0.5 * numpy_ofa(STUDENT_LOGITS, TEACHER_LOGITS, LABELS, 1.5, temperature=2.0)
    assert losses['loss_ofa_final'].item() == pytest.approx(final, rel=1e-10)


# -------------------------------------------------------------------------------------------- CNN exits
def test_cnn_stage1_exit_is_three_sepconvs_ending_at_the_wider_width():
    spec = fake('stage1', 'map', (16, 8, 8)).spec
    branch = built_ofa({1: spec}, student_width=32, teacher_width=48).branches['stage1']
    assert isinstance(branch, ConvExit)
    blocks = list(branch.downsample)
    assert len(blocks) == 3 and all(isinstance(b, SepConv) for b in blocks)
    pointwise_out = [[m for m in b if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)][-1].out_channels
                     for b in blocks]
    assert pointwise_out == [32, 64, 48]                       # C → 2C → 4C, the last block → d* = 48
    depthwise_strides = [[m.stride for m in b if isinstance(m, nn.Conv2d) and m.groups > 1] for b in blocks]
    assert depthwise_strides == [[(2, 2), (1, 1)]] * 3
    assert (branch.head.in_features, branch.head.out_features) == (48, 5)
    assert branch(fake('stage1', 'map', (16, 8, 8))).shape == (BATCH, 5)


def test_cnn_exits_per_stage_and_d_star_is_the_max_width():
    specs = {k: fake(f'stage{k}', 'map', (8 * 2 ** k, 16 // 2 ** k, 16 // 2 ** k)).spec for k in (1, 2, 3, 4)}
    branches = built_ofa(specs, student_width=64, teacher_width=24).branches      # d* = d_s here
    assert [len(branches[f'stage{k}'].downsample) for k in (1, 2, 3)] == [3, 2, 1]
    stage4 = branches['stage4'].downsample
    assert isinstance(stage4, nn.Conv2d) and stage4.kernel_size == (1, 1) and stage4.out_channels == 64
    for k in (1, 2, 3, 4):
        assert branches[f'stage{k}'].head.in_features == 64
        assert branches[f'stage{k}'](Feature(torch.randn(2, *specs[k].shape), specs[k])).shape == (2, 5)


# ------------------------------------------------------------------------------------------ token exits
@pytest.mark.parametrize('stage, grid, merges', [(1, 28, 2), (2, 14, 1), (3, 8, 0), (4, 56, 3), (1, 7, 0)])
def test_token_exit_structure(stage, grid, merges):
    width = 32
    assert merges == max(math.floor(math.log2(grid / 7)), 0)
    spec = FeatureSpec(f'stage{stage}', 'tokens', (1 + grid * grid, width), 1, (grid, grid))
    branch = built_ofa({stage: spec}, student_width=width, teacher_width=512).branches[f'stage{stage}']
    assert isinstance(branch, TokenExit)
    merging = [m for m in branch.modules() if isinstance(m, TokenPatchMerging)]
    assert len(merging) == merges
    assert [m.merge.out_dim for m in merging] == [width] * merges            # token exits stay at d_s
    # the OFA code: GELU after the first merge and after every later one but the last
    assert [isinstance(m.act, nn.GELU) for m in merging] == [i == 0 or i < merges - 1 for i in range(merges)]
    blocks = [m for m in branch.blocks if isinstance(m, Block)]
    assert len(blocks) == max(4 - stage, 1)
    assert all(b.attn.num_heads == 4 and b.norm1.normalized_shape == (width,) for b in blocks)
    assert (branch.head.in_features, branch.head.out_features) == (width, 5)
    assert branch(Feature(torch.randn(2, *spec.shape), spec)).shape == (2, 5)


def official_patch_merging(tokens, grid, norm, reduction, act):
    """The OFA code's PatchMerging.forward (distillers/utils.py) on (B, H·W, C) tokens."""
    b, _, c = tokens.shape
    x = tokens.view(b, *grid, c)
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    return act(reduction(norm(x.view(b, -1, 4 * c))))


def test_one_merge_vit_exit_matches_the_official_layout():
    """ViT at patch 16 / 224 px: a 14×14 grid, one merge, followed by GELU (``act_layer=nn.GELU if i == 0``)."""
    grid, width = (14, 14), 16
    spec = FeatureSpec('stage2', 'tokens', (1 + 14 * 14, width), 1, grid)
    merger = built_ofa({2: spec}, student_width=width, teacher_width=8).branches['stage2'].merge
    torch.manual_seed(0)
    tokens = torch.randn(2, 14 * 14, width)
    inner = merger[0].merge
    expected = official_patch_merging(tokens, grid, inner.norm, inner.reduction, nn.GELU())
    assert len(merger) == 1
    torch.testing.assert_close(merger(tokens), expected, rtol=0, atol=1e-6)
    without_gelu = official_patch_merging(tokens, grid, inner.norm, inner.reduction, nn.Identity())
    assert (merger(tokens) - without_gelu).abs().max() > 1e-2      # kdzoo's former layout differs


def test_token_exit_reads_the_cls_token_only_or_the_mean():
    grid, width = 4, 16
    with_cls = FeatureSpec('stage3', 'tokens', (2 + grid * grid, width), 2, (grid, grid))   # CLS + dist token
    branch = built_ofa({3: with_cls}, student_width=width, teacher_width=8).branches['stage3'].eval()
    feature = Feature(torch.randn(2, *with_cls.shape), with_cls)
    expected = branch.head(branch.blocks(feature.data)[:, 0])
    assert torch.allclose(branch(feature), expected)

    no_cls = FeatureSpec('stage3', 'tokens', (grid * grid, width), 0, (grid, grid))
    branch = built_ofa({3: no_cls}, student_width=width, teacher_width=8).branches['stage3'].eval()
    feature = Feature(torch.randn(2, *no_cls.shape), no_cls)
    assert torch.allclose(branch(feature), branch.head(branch.blocks(feature.data).mean(1)))


def test_token_family_override_for_map_students():
    """A Swin-like map stage given OFA's token exit: merged to d_s, no prefix, mean readout."""
    spec = fake('stage1', 'map', (8, 16, 16)).spec
    branch = built_ofa({1: spec}, student_width=32, teacher_width=16, student_family='token').branches['stage1']
    assert isinstance(branch, TokenExit) and branch.num_prefix == 0
    assert len([m for m in branch.modules() if isinstance(m, TokenPatchMerging)]) == 1
    assert branch(Feature(torch.randn(2, *spec.shape), spec)).shape == (2, 5)


def test_init_and_argument_errors():
    spec = fake('stage4', 'map', (8, 2, 2)).spec
    branch = built_ofa({4: spec}, student_width=64, teacher_width=8).branches['stage4']
    assert torch.count_nonzero(branch.head.bias) == 0
    assert branch.head.weight.std().item() == pytest.approx(0.02, rel=0.2)
    with pytest.raises(ValueError, match='eps must be one number or 3 values'):
        OFA(stages=(1, 2), eps=[1.0, 1.5])
    with pytest.raises(ValueError, match='stages'):
        OFA(stages=(0, 5))
    with pytest.raises(ValueError, match='num_classes=7 but the teacher has 5 logits'):
        built_ofa({4: spec}, student_width=64, teacher_width=8, num_classes=7)


def test_explicit_widths_drop_the_pre_logits_taps():
    distiller = OFA(stages=(2,), student_width=512, teacher_width=192)
    distiller.bind(['t'])
    assert distiller.required_taps() == {'student': ['stage2', 'logits'], 't': ['logits']}
    assert OFA().teacher_taps == ('logits', 'pre_logits')


def test_uncovered_stage_names_both_taps():
    spec = FeatureSpec('stage2', 'tokens', (50, 16), 0, None)          # no grid: no map, no merges
    with pytest.raises(ValueError) as error:
        built_ofa({2: spec}, 16, 8, student_family='cnn')
    message = str(error.value)
    assert 'stage2' in message and '(50, 16)' in message and 'logits' in message and '(5,)' in message


# ------------------------------------------------------------------------------------------- gradients
OFA_LOSSES = [f'loss_ofa_stage{k}' for k in range(1, 5)] + ['loss_ofa_final']


def test_gradients_vit_teacher_to_resnet_student():
    model = check_gradient_routing(RESNET, VIT_TEACHER, dict(type='ofa', eps=1.5), OFA_LOSSES)
    branches = model.distillers[0].branches
    assert all(isinstance(branches[f'stage{k}'], ConvExit) for k in (1, 2, 3, 4))
    assert branches['stage1'].head.in_features == 512                      # d* = max(512, 192)


def test_gradients_cnn_teacher_to_vit_student():
    model = check_gradient_routing(DEIT_STUDENT, RESNET, dict(type='OFA'), OFA_LOSSES)
    branches = model.distillers[0].branches
    assert all(isinstance(branches[f'stage{k}'], TokenExit) for k in (1, 2, 3, 4))
    assert [len(branches[f'stage{k}'].blocks) for k in (1, 2, 3, 4)] == [3, 2, 1, 1]
    assert branches['stage1'].head.in_features == 192                      # token exits stay at d_s
