"""Show how a teacher–student pair looks to kdzoo, and what each method would build for it.

    python tools/inspect_pair.py TEACHER STUDENT [--input-size C H W] [--num-classes N]
                                 [--methods kd dkd fitnet ofa ...] [--teacher-kwargs k=v ...]
                                 [--student-kwargs k=v ...]

TEACHER and STUDENT are timm model names (or timm class import paths). Prints every named tap of both
models with its probed shape, the stage mapping, and for each method the connectors it builds with their
parameter counts. Exits with status 1, giving the reason, when a method cannot serve the pair.
"""
import argparse
import ast
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch.nn as nn  # noqa: E402

import kdzoo  # noqa: E402,F401
from kdzoo.models import DistillModel, TimmClassifier  # noqa: E402
from kdzoo.taps import TapRecorder, describe_taps  # noqa: E402

DEFAULT_METHODS = ('kd', 'dkd', 'fitnet', 'ofa')


def parse_kwargs(items):
    kwargs = {}
    for item in items or ():
        key, _, value = item.partition('=')
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return kwargs


def model_cfg(name, num_classes, in_chans, extra):
    return dict(type='TimmClassifier', model_name=name, num_classes=num_classes, in_chans=in_chans, **extra)


def print_taps(role, cfg, input_size):
    model = TimmClassifier(**{k: v for k, v in cfg.items() if k != 'type'})
    taps = describe_taps(model)
    specs = TapRecorder(model, taps, role).probe(input_size)
    print(f'{role}: {cfg["model_name"]}  ({sum(p.numel() for p in model.parameters()):,} parameters)')
    for tap in taps:
        module = f'  <- {model.kdzoo_taps.stages[int(tap[5:]) - 1]}' if tap.startswith('stage') else ''
        print(f'  {specs[tap].describe()}{module}')


def inspect_method(method, student, teacher, input_size):
    """Build the pair with ``method``; returns the connector report or raises the build error."""
    model = DistillModel(student=student, teachers=dict(teacher=teacher), distillers=[dict(type=method)],
                         input_size=input_size)
    distiller = model.distillers[0]
    rows = []
    for name, child in distiller.named_children():
        parts = child.named_children() if isinstance(child, (nn.ModuleDict, nn.ModuleList)) else [('', child)]
        rows += [('.'.join(filter(None, (name, part))), sum(p.numel() for p in module.parameters()))
                 for part, module in parts]
    return rows, sum(p.numel() for p in distiller.parameters() if p.requires_grad)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Inspect a teacher–student pair for distillation.')
    parser.add_argument('teacher')
    parser.add_argument('student')
    parser.add_argument('--input-size', type=int, nargs=3, default=(3, 224, 224), metavar=('C', 'H', 'W'))
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS))
    parser.add_argument('--teacher-kwargs', nargs='*', help='extra timm arguments, e.g. img_size=32')
    parser.add_argument('--student-kwargs', nargs='*')
    args = parser.parse_args(argv)
    size = tuple(args.input_size)
    teacher = model_cfg(args.teacher, args.num_classes, size[0], parse_kwargs(args.teacher_kwargs))
    student = model_cfg(args.student, args.num_classes, size[0], parse_kwargs(args.student_kwargs))
    print_taps('teacher', teacher, size)
    print_taps('student', student, size)
    failures = 0
    for method in args.methods:
        try:
            rows, total = inspect_method(method, student, teacher, size)
        except Exception as error:  # noqa: BLE001  (any build error is the answer for this method)
            failures += 1
            print(f'{method}: cannot serve this pair: {error}')
            continue
        print(f'{method}: {total:,} extra trainable parameters')
        for name, count in rows:
            print(f'  {name}: {count:,}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
