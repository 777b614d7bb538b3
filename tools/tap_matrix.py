"""Any teacher × any student, tried: timm and mmpretrain families × distillers × both roles (docs/taps.md).

Each run builds a DistillModel with random weights at a small input size, takes one loss + backward on a
random batch and checks where the gradients went: the student learns, the frozen teacher does not, a
discriminator is not moved by the model's loss. Every run ends as one of

    ok     the step ran, the losses are finite and the gradients went where they should
    clear  the build refused with an error that names the problem and an argument that fixes it
    bad    anything else: an unclear error, a non-finite loss or gradients in the wrong place

and the table, the counts and every non-ok message are printed. Usage (CPU-heavy; keep it to one thread):

    OMP_NUM_THREADS=1 python tools/tap_matrix.py [--source timm|mmpretrain|all] [--families a,b]
                                                 [--methods kd,cakd] [--size 64]

--source picks the timm families (FAMILIES, the default), the mmpretrain backbone families (MM_FAMILIES, built
through kdzoo's MMPretrainClassifier) or both. --families defaults to every family of the source; the timm
families the tests cover (TESTED_FAMILIES: crossvit, hrnet, twins, vit, swin, eva02) run when named.
"""
import argparse
import copy
import os
import re
import sys
import time
import traceback
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# timm families not covered by tests/test_taps.py, at 64x64 unless `size` says otherwise (kwargs shrink models
# that take them)
FAMILIES = {
    'efficientnet': dict(model_name='efficientnet_b0'),
    'mobilenetv3': dict(model_name='mobilenetv3_small_050'),
    'ghostnet': dict(model_name='ghostnet_050'),
    'densenet': dict(model_name='densenet121'),
    'dla': dict(model_name='dla34'),
    'cspnet': dict(model_name='cspresnet50'),
    'regnetx': dict(model_name='regnetx_002'),
    'repvgg': dict(model_name='repvgg_a0'),
    'res2net': dict(model_name='res2net50_14w_8s'),
    'resnest': dict(model_name='resnest14d'),
    'rexnet': dict(model_name='rexnet_100'),
    'vgg': dict(model_name='vgg11'),
    'hgnetv2': dict(model_name='hgnetv2_b0'),
    'convnextv2': dict(model_name='convnextv2_atto'),
    'poolformer': dict(model_name='poolformer_s12'),
    'efficientformer': dict(model_name='efficientformer_l1', size=224),  # attention biases fixed at 7x7
    'efficientformerv2': dict(model_name='efficientformerv2_s0', img_size=64),
    'edgenext': dict(model_name='edgenext_xx_small'),
    'fastvit': dict(model_name='fastvit_t8'),
    'efficientvit_mit': dict(model_name='efficientvit_b0'),
    'efficientvit_msra': dict(model_name='efficientvit_m0', img_size=64),
    'tiny_vit': dict(model_name='tiny_vit_5m_224'),
    'pvt_v2': dict(model_name='pvt_v2_b0'),
    'gcvit': dict(model_name='gcvit_xxtiny', img_size=64),
    'davit': dict(model_name='davit_tiny'),
    'focalnet': dict(model_name='focalnet_tiny_srf'),
    'coat': dict(model_name='coat_lite_tiny', img_size=64),
    'cait': dict(model_name='cait_xxs24_224', img_size=64, depth=6),
    'pit': dict(model_name='pit_ti_224', img_size=64),
    'deit3': dict(model_name='deit3_small_patch16_224', img_size=64, depth=6),
    'beit': dict(model_name='beit_base_patch16_224', img_size=64, embed_dim=96, depth=6, num_heads=3),
    'flexivit': dict(model_name='flexivit_small', img_size=64, depth=6),
    'xcit': dict(model_name='xcit_nano_12_p16_224', img_size=64),
    'mobilevit': dict(model_name='mobilevit_xxs'),
    'maxvit': dict(model_name='maxvit_rmlp_pico_rw_256', img_size=64),
    'swinv2_cr': dict(model_name='swinv2_cr_tiny_ns_224', img_size=64, window_size=4),
    'nest': dict(model_name='nest_tiny', img_size=64),
    'visformer': dict(model_name='visformer_tiny', img_size=64),
    'inception_next': dict(model_name='inception_next_tiny'),
    'starnet': dict(model_name='starnet_s1'),
    'mambaout': dict(model_name='mambaout_femto'),
    'gmlp': dict(model_name='gmlp_ti16_224', img_size=64),
    'levit': dict(model_name='levit_128s', img_size=64),
}
# families the tests cover (tests/test_taps.py), run only when named with --families
TESTED_FAMILIES = {
    'crossvit': dict(model_name='crossvit_tiny_240', size=240),  # two branches whose sizes must agree
    'hrnet': dict(model_name='hrnet_w18_small'),
    'twins': dict(model_name='twins_svt_small', img_size=64, depths=(1, 1, 1, 1)),
    'vit': dict(model_name='vit_tiny_patch16_224', img_size=64, depth=4),
    'swin': dict(model_name='swin_tiny_patch4_window7_224', img_size=64, window_size=4, depths=(1, 1, 1, 1)),
    'eva02': dict(model_name='eva02_tiny_patch14_224', img_size=56, depth=2, size=56),
}

# mmpretrain backbone families, small settings at 64x64 (entries: the backbone, and a head where the backbone
# hands out something a LinearClsHead cannot read); the neck and the head's width follow the backbone's output
VIT_SMALL = dict(embed_dims=96, num_layers=6, num_heads=3, feedforward_channels=192)
PVT_SMALL = dict(embed_dims=[32, 64, 128, 256], depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], patch_sizes=[4, 2, 2, 2],
                 strides=[4, 2, 2, 2], mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1])
SWIN_SMALL = dict(embed_dims=48, depths=[1, 1, 2, 1], num_heads=[3, 3, 3, 3])
MM_FAMILIES = {
    'resnet': dict(backbone=dict(type='ResNet', depth=18)),
    'resnetv1d': dict(backbone=dict(type='ResNetV1d', depth=18)),
    'resnet_cifar': dict(backbone=dict(type='ResNet_CIFAR', depth=18)),
    'resnext': dict(backbone=dict(type='ResNeXt', depth=50, groups=32, width_per_group=4)),
    'seresnet': dict(backbone=dict(type='SEResNet', depth=50)),
    'res2net': dict(backbone=dict(type='Res2Net', depth=50, scales=4, base_width=26)),
    'resnest': dict(backbone=dict(type='ResNeSt', depth=50)),
    'regnet': dict(backbone=dict(type='RegNet', arch='regnetx_400mf')),
    'mobilenetv2': dict(backbone=dict(type='MobileNetV2', widen_factor=0.5)),
    'mobilenetv3': dict(backbone=dict(type='MobileNetV3', arch='small')),
    'shufflenetv1': dict(backbone=dict(type='ShuffleNetV1', groups=3, widen_factor=0.5)),
    'shufflenetv2': dict(backbone=dict(type='ShuffleNetV2', widen_factor=0.5)),
    'efficientnet': dict(backbone=dict(type='EfficientNet', arch='b0')),
    'efficientnetv2': dict(backbone=dict(type='EfficientNetV2', arch='b0')),
    'mobileone': dict(backbone=dict(type='MobileOne', arch='s0')),
    'mobilevit': dict(backbone=dict(type='MobileViT', arch='xx_small')),
    'cspresnet': dict(backbone=dict(type='CSPResNet', depth=50)),
    'densenet': dict(backbone=dict(type='DenseNet', arch='121')),
    'repvgg': dict(backbone=dict(type='RepVGG', arch='A0')),
    'vgg': dict(backbone=dict(type='VGG', depth=11)),
    'hrnet': dict(backbone=dict(type='HRNet', arch='w18')),
    'convnext': dict(backbone=dict(type='ConvNeXt', arch='atto')),
    'van': dict(backbone=dict(type='VAN', arch='tiny')),
    'poolformer': dict(backbone=dict(type='PoolFormer', arch='s12')),
    'riformer': dict(backbone=dict(type='RIFormer', arch='s12')),
    'edgenext': dict(backbone=dict(type='EdgeNeXt', arch='xxsmall')),
    'hornet': dict(backbone=dict(type='HorNet', arch='tiny')),
    'convmixer': dict(backbone=dict(type='ConvMixer', arch=dict(embed_dims=128, depth=6, patch_size=4, kernel_size=5))),
    'mlp_mixer': dict(backbone=dict(type='MlpMixer', img_size=64, patch_size=8,
                                    arch=dict(embed_dims=96, num_layers=6, tokens_mlp_dims=96, channels_mlp_dims=192))),
    'vit': dict(backbone=dict(type='VisionTransformer', arch=VIT_SMALL, img_size=64, patch_size=8)),
    'deit': dict(backbone=dict(type='DistilledVisionTransformer', arch='deit-tiny', img_size=64, patch_size=8),
                 head=dict(type='DeiTClsHead', in_channels=192)),
    'deit3': dict(backbone=dict(type='DeiT3', arch=VIT_SMALL, img_size=64, patch_size=8)),
    'beit': dict(backbone=dict(type='BEiTViT', arch=VIT_SMALL, img_size=64, patch_size=8)),
    'eva02': dict(backbone=dict(type='ViTEVA02', arch=VIT_SMALL, img_size=64, patch_size=8)),
    'revvit': dict(backbone=dict(type='RevVisionTransformer', arch=VIT_SMALL, img_size=64, patch_size=8)),
    't2t_vit': dict(backbone=dict(type='T2T_ViT', img_size=64, embed_dims=96, num_layers=6,
                                  layer_cfgs=dict(num_heads=3, feedforward_channels=192))),
    'xcit': dict(backbone=dict(type='XCiT', img_size=64, embed_dims=96, depth=6, num_heads=3, patch_size=8)),
    'swin': dict(backbone=dict(type='SwinTransformer', arch=SWIN_SMALL, img_size=64, window_size=4,
                               pad_small_map=True)),
    'swinv2': dict(backbone=dict(type='SwinTransformerV2', arch=dict(SWIN_SMALL, extra_norm_every_n_blocks=0),
                                 img_size=64, window_size=[4, 4, 4, 2])),
    'pcpvt': dict(backbone=dict(type='PCPVT', arch=PVT_SMALL)),
    'svt': dict(backbone=dict(type='SVT', arch=dict(PVT_SMALL, window_sizes=[4, 4, 4, 4]))),
    'davit': dict(backbone=dict(type='DaViT', arch='tiny', window_size=4, pad_small_map=True)),
    'mvit': dict(backbone=dict(type='MViT', arch='tiny', img_size=64)),
    'levit': dict(backbone=dict(type='LeViT', arch='128s', img_size=64)),
    'tinyvit': dict(backbone=dict(type='TinyViT', arch='5m', img_size=(64, 64), window_size=[4, 4, 4, 2])),
    'conformer': dict(backbone=dict(type='Conformer', arch='tiny'),
                      head=dict(type='ConformerHead', in_channels=[256, 384])),
    'tnt': dict(backbone=dict(type='TNT', arch='s', img_size=64)),
    'hivit': dict(backbone=dict(type='HiViT', arch='tiny', img_size=64)),
}
METHODS = ('kd', 'fitnet', 'ofa', 'rkd', 'cakd', 'fofa', 'civt')
FIX = re.compile(r"\b\w+=|\bpass\b|\bset\b|\buse\b|\bpick\b|\bchoose\b|\btap (a|one)\b|\bselect\b|\blower\b"
                 r"|\braise\b", re.I)


def timm_cfg(**kwargs):
    return dict(type='TimmClassifier', num_classes=10, **kwargs)


def mmpretrain_cfg(backbone, head=None, size=64):
    """An MMPretrainClassifier config around ``backbone``: a pooling neck for map (4-D) and token (3-D)
    outputs, none for vectors, and a LinearClsHead as wide as the backbone's last output (one forward)."""
    from mmpretrain.registry import MODELS
    if head is None:
        with torch.no_grad():
            net = MODELS.build(dict(copy.deepcopy(backbone), _scope_='mmpretrain'))
            net.eval()  # (mmpretrain's train() returns None)
            output = net(torch.zeros(1, 3, size, size))[-1]
        head = dict(type='LinearClsHead', in_channels=output.shape[1])
        neck = dict(type='GlobalAveragePooling', dim=output.dim() - 2) if output.dim() > 2 else None
    else:
        neck = None
    return dict(type='MMPretrainClassifier', model=dict(type='ImageClassifier', backbone=backbone, neck=neck,
                                                         head=dict(head, num_classes=10)))


def partners(size):
    """Fixed partner models: a small CNN student / teacher and a small class-token ViT."""
    cnn = timm_cfg(model_name='resnet10t', channels=(16, 32, 64, 128), stem_width=16)
    vit = timm_cfg(model_name='vit_tiny_patch16_224', img_size=size, patch_size=8, embed_dim=64, depth=4,
                   num_heads=2)
    return cnn, vit


def distiller_cfg(method, role):
    if method == 'civt':
        return dict(type='civt', conv_teacher='t', inv_teacher='inv')
    if method == 'fofa':
        return dict(type='fofa', num_queries=16, dim=32)
    if method == 'cakd':
        return dict(type='cakd', student_stage='stage1', schedule=None, teacher='t')
    return dict(type=method)


def build(method, role, family_cfg, size):
    """The DistillModel for one run; for CAKD the student stage whose grid matches the teacher's is found
    by following the error's own advice (student_stage=...)."""
    from kdzoo.models import DistillModel
    cnn, vit = partners(size)
    adapters = []
    if method == 'civt':
        student, teachers = (vit, dict(t=family_cfg)) if role == 'teacher' else (family_cfg, dict(t=cnn))
        teachers['inv'] = dict(type='rednet26', num_classes=10)
        adapters = [dict(type='civt_tokens')]
    elif role == 'teacher':
        student, teachers = cnn, dict(t=family_cfg)
    else:
        student, teachers = family_cfg, dict(t=vit if method in ('cakd', 'fofa') else cnn)
    if method == 'fofa':
        adapters = [dict(type='afp', target='t')]
    distiller = distiller_cfg(method, role)
    stages = ['stage1', 'stage2', 'stage3', 'stage4'] if method == 'cakd' else [None]
    for stage in stages:
        if stage:
            distiller['student_stage'] = stage
        try:
            return DistillModel(student=copy.deepcopy(student), teachers=copy.deepcopy(teachers),
                                distillers=[dict(distiller)], adapters=copy.deepcopy(adapters),
                                input_size=(3, size, size))
        except ValueError as error:
            if stage and 'student_stage=' in str(error) and stage != stages[-1]:
                continue
            raise


def gradient_problem(model):
    student = [p for p in model.student.parameters() if p.requires_grad]
    if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in student):
        return 'no gradient reached the student'
    for name, teacher in model.teachers.items():
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in teacher.parameters()):
            return f'teacher {name!r} received gradients'
    for distiller in model.distillers:
        disc = getattr(distiller, 'discriminator', None)
        if disc is not None and any(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters()):
            return 'the model loss moved the discriminator'
    return None


def run_one(method, role, family_cfg, size):
    from mmpretrain.structures import DataSample
    try:
        model = build(method, role, family_cfg, size)
    except Exception as error:  # noqa: BLE001 (classified, never hidden: printed below)
        message = f"{type(error).__name__}: {error}"
        clear = isinstance(error, (ValueError, KeyError, TypeError, RuntimeError, IndexError)) \
            and FIX.search(str(error)) is not None
        return ('clear' if clear else 'bad'), message if clear else traceback.format_exc(limit=-4)
    model.train()
    inputs = torch.randn(2, 3, size, size)
    samples = [DataSample().set_gt_label(i) for i in range(2)]
    try:
        losses = model.loss(inputs, samples)
        total = sum(v.sum() for v in losses.values())
        if not torch.isfinite(total):
            return 'bad', f'non-finite loss {losses}'
        total.backward()
    except Exception:  # noqa: BLE001
        return 'bad', 'training step failed: ' + traceback.format_exc(limit=-4)
    problem = gradient_problem(model)
    return ('bad', problem) if problem else ('ok', '')


def selected_families(parser, args):
    """``[(source, name)]`` of the families to run: --families (looked up in --source, timm first for
    'all') or every family of --source."""
    sources = {'timm': {**FAMILIES, **TESTED_FAMILIES}, 'mmpretrain': MM_FAMILIES}
    searched = ('timm', 'mmpretrain') if args.source == 'all' else (args.source,)
    if not args.families:
        return [(source, name) for source in searched for name in (FAMILIES if source == 'timm' else MM_FAMILIES)]
    chosen = []
    for name in args.families.split(','):
        source = next((source for source in searched if name in sources[source]), None)
        if source is None:
            known = ', '.join(name for source in searched for name in sources[source])
            parser.error(f"unknown family {name!r} for --source {args.source}; choose from {known}")
        chosen.append((source, name))
    return chosen


def label(family):
    """'hrnet' for timm's, 'mm:hrnet' for mmpretrain's (both sources have an HRNet, a LeViT...)."""
    source, name = family
    return f'mm:{name}' if source == 'mmpretrain' else name


def model_cfg(family, size):
    """The model config of one ``(source, name)`` family and its input size."""
    source, name = family
    if source == 'mmpretrain':
        return mmpretrain_cfg(size=size, **MM_FAMILIES[name]), size
    kwargs = dict(FAMILIES.get(name) or TESTED_FAMILIES[name])
    size = kwargs.pop('size', size)
    return timm_cfg(**kwargs), size


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--source', choices=('timm', 'mmpretrain', 'all'), default='timm')
    parser.add_argument('--families', help='comma-separated names (default: every family of --source)')
    parser.add_argument('--methods', default=','.join(METHODS))
    parser.add_argument('--roles', default='student,teacher')
    parser.add_argument('--size', type=int, default=64)
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    import kdzoo  # noqa: F401  (registers kdzoo's modules)
    from mmengine.logging import MMLogger
    MMLogger.get_instance('kdzoo', log_level='ERROR')
    torch.manual_seed(0)
    counts, notes = {'ok': 0, 'clear': 0, 'bad': 0}, []
    symbols = {'ok': '✓', 'clear': 'E', 'bad': 'X'}
    methods, roles = args.methods.split(','), args.roles.split(',')
    families = selected_families(parser, args)
    print(f"{'family':18s} " + ' '.join(f'{m}:{r[0]}' for m in methods for r in roles), flush=True)
    for family in families:
        cfg, size = model_cfg(family, args.size)
        cells = []
        start = time.time()
        for method in methods:
            for role in roles:
                outcome, message = run_one(method, role, cfg, size)
                counts[outcome] += 1
                cells.append(symbols[outcome].center(len(method) + 2))
                if outcome != 'ok':
                    notes.append(f"[{outcome}] {label(family)} {method} as {role}: {message.strip()}")
        print(f"{label(family):18s} {' '.join(cells)}  ({time.time() - start:.0f} s)", flush=True)
    print(f"\nok {counts['ok']} / clear error {counts['clear']} / bad {counts['bad']}  "
          f"({sum(counts.values())} runs)\n")
    for note in notes:
        print(note[:1500] + '\n')
    return 1 if counts['bad'] else 0


if __name__ == '__main__':
    sys.exit(main())
