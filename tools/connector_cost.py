"""What a feature method's own modules cost, against the floor and its full step (CPU or GPU).

    python tools/connector_cost.py configs/quickstart/fitnet.py configs/quickstart/ofa.py [--repeats 20]

For each config: the full distillation step (c), and the distiller alone, forward + backward on detached
student features and the teacher's features (its connectors, exits or projectors and its loss). Both are
timed on the config's first training batch, interleaved with the floor (a) teacher forward + (b) student step,
as tools/speed.py does. (c) / floor − 1 is the method's overhead; the distiller-alone row says how much of it
is the method's own modules, which the algorithm needs, and the rest is what the step adds around them.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

import speed  # noqa: E402
from kdzoo.taps import Feature  # noqa: E402


def distiller_alone(model, batch):
    """A callable: the first distiller's forward + backward on detached student features of ``batch``."""
    data = model.data_preprocessor(batch, True)
    inputs, labels = data['inputs'], model.task.targets(data['data_samples'])[0]
    distiller = model.distillers[0]
    teacher = model.run_teachers(inputs)
    _, student = model._record('student', model.student, inputs)

    def run():
        detached = {k: Feature(f.data.detach().requires_grad_(True), f.spec) for k, f in student.items()}
        sum(distiller(detached, teacher, labels).values()).backward()
        distiller.zero_grad()
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    args = parser.parse_args(argv)
    DefaultScope.get_instance('kdzoo-connector-cost', scope_name='kdzoo')
    device = torch.device('cpu')
    parts = {}
    for path in args.configs:
        name = osp.splitext(osp.basename(path))[0]
        cfg = speed.load_config(path)
        model = speed.build_model(cfg, 'as-configured', device)
        measurements = speed.make_measurements({(name, 'as-configured'): model}, {name: cfg}, args.batch_size, device)
        parts[f'(c) {name} step'] = measurements[f'(c) {name}']
        parts[f'{name}: distiller alone fwd+bwd'] = distiller_alone(model, speed.first_training_batch(cfg, args.batch_size))
        parts.setdefault('(a) teacher forward', measurements['(a) teacher forward'])
        parts.setdefault('(b) student step', measurements['(b) student step'])
    medians = speed.measure_times(parts, args.repeats, args.warmup, device)
    floor = medians['(a) teacher forward'] + medians['(b) student step']
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch_size}, {args.repeats} interleaved repeats")
    print(f"{'measurement':40s}{'median ms':>10}{'/ floor':>9}")
    for key, value in medians.items():
        print(f'{key:40s}{value * 1e3:10.1f}{value / floor:9.3f}')
    return medians


if __name__ == '__main__':
    main()
