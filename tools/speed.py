"""Step-time overhead of distillation methods, measured in one process, interleaved and repeated.

    python tools/speed.py CONFIG [CONFIG ...] [--batch-size 64] [--repeats 20] [--warmup 3]

For the configs' teacher–student pair this times (a) the teacher forward alone, (b) a student training
step alone (forward, CE, backward, SGD step) and, per config, (c) the full DistillModel training step,
each the median of ``--repeats`` rounds in which all measurements run in a shuffled order. It prints
(c) / ((a) + (b)) and the method's extra trainable parameters. Teachers whose checkpoint does not exist
are randomly initialised (their weights do not change the time). Timings synchronise CUDA when present.
"""
import argparse
import os.path as osp
import random
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402

import kdzoo  # noqa: E402,F401
from kdzoo.registry import MODELS  # noqa: E402


def build_model(config, device):
    cfg = Config.fromfile(config)
    for teacher in cfg.model.get('teachers', {}).values():
        if teacher.get('checkpoint') and not osp.isfile(teacher['checkpoint']):
            teacher['checkpoint'] = None
    return MODELS.build(cfg.model).to(device).train()


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device):
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def fake_batch(model, batch_size, device):
    from mmpretrain.structures import DataSample
    num_classes = model.recorders['student'].specs['logits'].shape[0] if 'student' in model.recorders \
        else model.student(torch.zeros(2, *model.input_size, device=device)).shape[1]
    labels = torch.randint(0, num_classes, (batch_size,))
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return torch.randn(batch_size, *model.input_size, device=device), samples, labels.to(device)


def make_measurements(models, batch_size, device):
    """{name: zero-argument callable} for the floor (a), (b) and each method's step (c)."""
    reference = next(iter(models.values()))
    inputs, samples, labels = fake_batch(reference, batch_size, device)
    student_optimizer = torch.optim.SGD(reference.student.parameters(), lr=1e-4)
    teacher = next(iter(reference.teachers.values()))

    def teacher_forward():
        with torch.no_grad():
            teacher(inputs)

    def student_step():
        student_optimizer.zero_grad()
        F.cross_entropy(reference.student(inputs), labels).backward()
        student_optimizer.step()

    measurements = {'(a) teacher forward': teacher_forward, '(b) student step': student_step}
    for name, model in models.items():
        wrapper = OptimWrapper(torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4))
        data = dict(inputs=inputs, data_samples=samples)
        measurements[f'(c) {name}'] = lambda m=model, w=wrapper, d=data: m.train_step(
            dict(inputs=d['inputs'], data_samples=d['data_samples']), w)
    return measurements


def extra_parameters(model):
    return sum(p.numel() for part in (model.distillers, model.adapters) for p in part.parameters()
               if p.requires_grad)


def measure(measurements, repeats, warmup, device):
    names = list(measurements)
    for _ in range(warmup):
        for name in names:
            measurements[name]()
    times = {name: [] for name in names}
    for _ in range(repeats):
        random.shuffle(names)
        for name in names:
            times[name].append(timed(measurements[name], device))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description='Time distillation steps against the teacher+student floor.')
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    random.seed(0)
    models = {osp.splitext(osp.basename(c))[0]: build_model(c, device) for c in args.configs}
    medians = measure(make_measurements(models, args.batch_size, device), args.repeats, args.warmup, device)
    floor = medians['(a) teacher forward'] + medians['(b) student step']
    print(f'device {device}, batch {args.batch_size}, {args.repeats} interleaved repeats, '
          f'torch threads {torch.get_num_threads()}')
    print(f"{'measurement':<28}{'median ms':>10}{'/ floor':>9}{'extra params':>14}")
    for name, seconds in medians.items():
        ratio = f'{seconds / floor:.3f}' if name.startswith('(c)') else ''
        extra = f'{extra_parameters(models[name[4:]]):,}' if name.startswith('(c)') else ''
        print(f'{name:<28}{seconds * 1e3:>10.1f}{ratio:>9}{extra:>14}')
    print(f"{'floor (a)+(b)':<28}{floor * 1e3:>10.1f}")
    return medians, floor


if __name__ == '__main__':
    main()
