"""Any teacher × any student, tried: timm families × distillers × both roles, one step each (docs/taps.md).

Each run builds a DistillModel with random weights at a small input size, takes one loss + backward on a
random batch and checks where the gradients went: the student learns, the frozen teacher does not, a
discriminator is not moved by the model's loss. Every run ends as one of

    ok     the step ran, the losses are finite and the gradients went where they should
    clear  the build refused with an error that names the problem and an argument that fixes it
    bad    anything else: an unclear error, a non-finite loss or gradients in the wrong place

and the table, the counts and every non-ok message are printed. Usage (CPU-heavy; keep it to one thread):

    OMP_NUM_THREADS=1 python tools/tap_matrix.py [--families a,b] [--methods kd,cakd] [--size 64]

--families defaults to every family of FAMILIES; the families the tests cover (TESTED_FAMILIES: crossvit,
hrnet, twins, vit, swin, eva02) run when named.
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
METHODS = ('kd', 'fitnet', 'ofa', 'rkd', 'cakd', 'fofa', 'civt')
FIX = re.compile(r"\b\w+=|\bpass\b|\bset\b|\buse\b|\bpick\b|\bchoose\b|\btap (a|one)\b|\bselect\b|\blower\b"
                 r"|\braise\b", re.I)


def timm_cfg(**kwargs):
    return dict(type='TimmClassifier', num_classes=10, **kwargs)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--families', default=','.join(FAMILIES))
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
    print(f"{'family':18s} " + ' '.join(f'{m}:{r[0]}' for m in methods for r in roles), flush=True)
    for family in args.families.split(','):
        if family not in FAMILIES and family not in TESTED_FAMILIES:
            parser.error(f"unknown family {family!r}; choose from {', '.join({**FAMILIES, **TESTED_FAMILIES})}")
        kwargs = dict(FAMILIES.get(family) or TESTED_FAMILIES[family])
        size = kwargs.pop('size', args.size)
        cfg = timm_cfg(**kwargs)
        cells = []
        start = time.time()
        for method in methods:
            for role in roles:
                outcome, message = run_one(method, role, cfg, size)
                counts[outcome] += 1
                cells.append(symbols[outcome].center(len(method) + 2))
                if outcome != 'ok':
                    notes.append(f"[{outcome}] {family} {method} as {role}: {message.strip()}")
        print(f"{family:18s} {' '.join(cells)}  ({time.time() - start:.0f} s)", flush=True)
    print(f"\nok {counts['ok']} / clear error {counts['clear']} / bad {counts['bad']}  "
          f"({sum(counts.values())} runs)\n")
    for note in notes:
        print(note[:1500] + '\n')
    return 1 if counts['bad'] else 0


if __name__ == '__main__':
    sys.exit(main())
