"""Step time and peak memory of distillation methods against the teacher + student floor, in one process.

    python tools/speed.py CONFIG [CONFIG ...] [--batch-size 64] [--repeats 20] [--warmup 3]
                          [--variants as-configured bf16 channels-last ...] [--device cpu|cuda]

The configs must share one teacher–student pair (same student and teacher model dicts). The tool times

  (a) the teachers' forward alone (fp32, ``torch.inference_mode``): the least any distillation step pays;
  (b) a student training step alone (the data preprocessor, forward, its task loss: CE or a face model's
      margin loss, backward, the config's optimiser step);
  (c) each config's full ``DistillModel.train_step`` with its own optimiser wrapper (discriminators included),
      once per ``--variants`` entry (teacher fast-path options: ``bf16``/``fp16`` autocast, ``channels-last``;
      ``cache``: a teacher cache filled with the timed batch first, so the step reads the teachers' outputs
      and its algorithmic floor is (b));
  (p) for a config whose teacher adapters train (FOFA's AFP, URFM's APT): the prompted teachers' forward and
      backward into those adapters, with the variant's teacher settings;

each the median of ``--repeats`` rounds in which every measurement runs once, in a shuffled order, so load
changes on a shared machine hit all of them alike. It prints (c) / ((a) + (b)); each method's algorithmic
floor, what its teacher and student passes cost timed bare: (b) plus (a) for a frozen teacher, or (b) plus
(p) plus, when a distiller reads the un-prompted teacher (FOFA, URFM's prompt anchor), (a) for that pass;
(c) over that floor, which is the overhead of everything else (connectors, losses, copies, optimiser); the
method's extra trainable parameters, and each step's peak memory relative to (b): on CUDA from the
allocator's peak counter, on CPU from the bytes of every tensor the step creates while it is alive (a
dispatch-mode tracker; it counts tensors, not allocator overhead). Teachers whose checkpoint does not exist are randomly initialised (their weights do
not change the time). CUDA timings synchronise the device before and after each measurement.

All measurements see one batch: the first config's first training batch when its data is on this machine,
else uniform random pixels. Some kernels' speed depends on the values (on the ORL face student PReLU's
backward was faster on nearly constant inputs than on noise), so the floor and the steps must share inputs.
"""
import argparse
import copy
import os.path as osp
import random
import shutil
import statistics
import sys
import tempfile
import time
import weakref

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.optim import OptimWrapperDict, build_optim_wrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402

import kdzoo  # noqa: E402,F401
from kdzoo.engine.teacher_cache import fill_for_batch  # noqa: E402
from kdzoo.registry import MODELS  # noqa: E402
from kdzoo.tools_support import load_config as load_checked_config  # noqa: E402

VARIANTS = {
    'as-configured': {},
    'fp32': dict(teacher_precision='fp32', teacher_channels_last=False),
    'bf16': dict(teacher_precision='bf16'),
    'fp16': dict(teacher_precision='fp16'),
    'channels-last': dict(teacher_channels_last=True),
    'bf16+channels-last': dict(teacher_precision='bf16', teacher_channels_last=True),
    'cache': {},   # a teacher cache filled with the timed batch beforehand: the step reads, the teacher never runs
}


# ---------------------------------------------------------------- building
def load_config(path):
    cfg = load_checked_config(path)
    for teacher in cfg.model.get('teachers', {}).values():
        if teacher.get('checkpoint') and not osp.isfile(teacher['checkpoint']):
            teacher['checkpoint'] = None
    return cfg


def pair_of(cfg):
    teachers = {name: t.get('model', t) for name, t in cfg.model.get('teachers', {}).items()}
    return cfg.model.student.to_dict(), {name: dict(t) for name, t in teachers.items()}


def check_same_pair(configs):
    """Every config must distil the same pair, or the shared floor (a) + (b) means nothing."""
    (first_path, first), *rest = configs.items()
    for path, cfg in rest:
        if pair_of(cfg) != pair_of(first):
            raise ValueError(f"{path} and {first_path} distil different teacher-student pairs; the floor "
                             "(a) + (b) is per pair, so time each pair in its own run")
    if not first.model.get('teachers'):
        raise ValueError(f"{first_path} has no teachers: there is no distillation step to time")


def build_model(cfg, variant, device):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(VARIANTS[variant])
    model_cfg.pop('teacher_cache', None)   # the config's own cache holds its training set, not the timed batch
    if variant == 'cache':
        model_cfg.teacher_cache = dict(path=tempfile.mkdtemp(prefix='kdzoo-speed-cache-'), views=1)
    return MODELS.build(model_cfg).to(device).train()


def build_wrapper(model, cfg):
    """The config's optimiser wrapper (its constructor included), without AMP or gradient clipping."""
    wrapper_cfg = copy.deepcopy(cfg.get('optim_wrapper', dict(optimizer=dict(type='SGD', lr=1e-4))))
    wrapper_cfg.pop('type', None)
    wrapper_cfg.pop('clip_grad', None)
    return build_optim_wrapper(model, wrapper_cfg)


def num_classes_of(student, input_size, device):
    head = getattr(student, 'head', None)      # face recognisers: the margin head holds the identities
    if head is not None and hasattr(head, 'num_classes'):
        return head.num_classes
    with torch.no_grad():
        return student(torch.zeros(2, *input_size, device=device)).shape[1]


def first_training_batch(cfg, batch_size):
    """The config's first training batch as the Runner would see it, or None when its data is not here."""
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    try:
        return next(iter(Runner.build_dataloader(loader_cfg, seed=0)))
    except OSError as error:        # a dataset that is not on this machine says where it looked
        print(f'no training data: {error}')
        return None


def random_pixel_batch(model, batch_size, device):
    """Images of uniform random 0-255 pixels with random labels, shaped like the model's input."""
    from mmpretrain.structures import DataSample
    num_classes = num_classes_of(model.student, model.input_size, device)
    samples = [DataSample().set_gt_label(int(y)) for y in torch.randint(0, num_classes, (batch_size,))]
    images = [torch.randint(0, 256, model.input_size, dtype=torch.uint8) for _ in range(batch_size)]
    return dict(inputs=images, data_samples=samples)


def make_measurements(models, configs, batch_size, device):
    """{name: zero-argument callable}: the floor (a), (b) and each (config, variant)'s step (c).

    Every measurement sees the same pixels: kernels such as PReLU's backward run faster or slower with the
    values they get, so a floor timed on other inputs than the steps would not be a floor.
    """
    reference = next(iter(models.values()))
    reference_name, reference_cfg = next(iter(configs.items()))
    batch = first_training_batch(reference_cfg, batch_size)
    if batch is None:
        batch = random_pixel_batch(reference, batch_size, device)
        print(f'timing a batch of {batch_size} images of random pixel values')
    else:
        print(f"timing the first training batch of {reference_name} ({len(batch['inputs'])} images)")
    inputs = reference.data_preprocessor(batch, training=True)['inputs']
    for model in models.values():
        if model.teacher_cache is not None:
            fill_for_batch(model, batch)
    student_wrapper = build_wrapper(reference.student, reference_cfg)
    if isinstance(student_wrapper, OptimWrapperDict):     # a discriminator constructor: the student's part
        student_wrapper = student_wrapper['model']

    def teacher_forward():
        with torch.inference_mode():
            for teacher in reference.teachers.values():
                teacher(inputs)

    def student_step():
        data = reference.data_preprocessor(batch, training=True)
        losses = reference.task_loss(reference.student(data['inputs']),
                                      *reference.task.targets(data['data_samples']))
        student_wrapper.update_params(sum(losses.values()))

    measurements = {'(a) teacher forward': teacher_forward, '(b) student step': student_step}
    for (name, variant), model in models.items():
        wrapper = build_wrapper(model, configs[name])
        measurements[step_label(name, variant)] = lambda m=model, w=wrapper: m.train_step(batch, w)
        if model.teachers_need_grad:
            measurements[prompted_label(name, variant)] = prompted_teacher_pass(model, inputs)
    return measurements


def step_label(name, variant):
    return f'(c) {name}' + ('' if variant == 'as-configured' else f' [{variant}]')


def prompted_label(name, variant):
    return step_label(name, variant).replace('(c)', '(p)', 1) + ' prompted teacher'


def prompted_teacher_pass(model, inputs):
    """The prompted teachers' forward and the backward into their trainable adapters, timed bare."""
    params = [p for adapter in model.adapters if adapter.target in model.teachers
              for p in adapter.parameters() if p.requires_grad]

    def forward_backward():
        teacher_inputs, autocast = model.teacher_pass(inputs)
        with autocast:
            outputs = [teacher(teacher_inputs) for teacher in model.teachers.values()]
        torch.autograd.grad(sum(output.float().sum() for output in outputs), params, allow_unused=True)
    return forward_backward


def algorithmic_floor(model, medians, name, variant):
    """What the method's teacher and student passes cost timed bare (module docstring)."""
    floor = medians['(b) student step']
    if model.teacher_cache is not None:   # the teachers do not run: the student step is the floor
        return floor
    if not model.teachers_need_grad:
        return floor + medians['(a) teacher forward']
    floor += medians[prompted_label(name, variant)]
    if any(distiller.reads_bare_teacher for distiller in model.distillers):
        floor += medians['(a) teacher forward']
    return floor


def extra_parameters(model):
    return sum(p.numel() for part in (model.distillers, model.adapters) for p in part.parameters()
               if p.requires_grad)


# ---------------------------------------------------------------- measuring
def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device):
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


class TensorBytesPeak(TorchDispatchMode):
    """Peak bytes of the tensors created under this mode that are alive at once (CPU peak memory)."""

    def __init__(self):
        super().__init__()
        self.live, self.current, self.peak = {}, 0, 0

    def _release(self, key):
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(output)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.device.type != 'meta':
                storage = tensor.untyped_storage()
                key = storage._cdata
                if key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._release, key)
        return output


def peak_bytes(fn, device):
    """Bytes a call needs at its peak beyond what was allocated before it."""
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with TensorBytesPeak() as tracker:
        fn()
    return tracker.peak


def measure_times(measurements, repeats, warmup, device):
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


def measure_memory(measurements, device):
    return {name: peak_bytes(fn, device) for name, fn in measurements.items()}


# ---------------------------------------------------------------- report
def report(medians, peaks, models, device, args):
    floor = medians['(a) teacher forward'] + medians['(b) student step']
    student_peak = peaks['(b) student step']
    lines = [f'device {device}, batch {args.batch_size}, {args.repeats} interleaved repeats, '
             f'torch threads {torch.get_num_threads()}',
             f"{'measurement':<44}{'median ms':>10}{'/ floor':>9}{'alg floor ms':>14}{'/ alg':>7}"
             f"{'extra params':>14}{'peak MiB':>10}{'/ (b)':>8}"]
    by_label = {step_label(name, variant): (model, name, variant) for (name, variant), model in models.items()}
    for label, seconds in medians.items():
        ratio = alg_floor = alg_ratio = extra = ''
        if label in by_label:
            model, name, variant = by_label[label]
            alg = algorithmic_floor(model, medians, name, variant)
            ratio, alg_floor, alg_ratio = f'{seconds / floor:.3f}', f'{alg * 1e3:.1f}', f'{seconds / alg:.3f}'
            extra = f'{extra_parameters(model):,}'
        memory = f'{peaks[label] / student_peak:.2f}' if label != '(a) teacher forward' else ''
        lines.append(f'{label:<44}{seconds * 1e3:>10.1f}{ratio:>9}{alg_floor:>14}{alg_ratio:>7}{extra:>14}'
                     f'{peaks[label] / 2**20:>10.1f}{memory:>8}')
    lines.append(f"{'floor (a)+(b)':<36}{floor * 1e3:>10.1f}")
    print('\n'.join(lines))
    return floor


def parse_args(argv):
    parser = argparse.ArgumentParser(description='Time distillation steps against the teacher+student floor.')
    parser.add_argument('configs', nargs='+', help='configs of one teacher-student pair')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--variants', nargs='+', default=['as-configured'], choices=list(VARIANTS),
                        help='teacher fast-path settings to time each config with')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory pass')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    DefaultScope.get_instance('kdzoo-speed', scope_name='kdzoo')
    torch.manual_seed(0)
    random.seed(0)
    configs = {osp.splitext(osp.basename(path))[0]: load_config(path) for path in args.configs}
    check_same_pair({path: cfg for path, cfg in zip(args.configs, configs.values())})
    models = {(name, variant): build_model(cfg, variant, device)
              for name, cfg in configs.items() for variant in args.variants}
    measurements = make_measurements(models, configs, args.batch_size, device)
    medians = measure_times(measurements, args.repeats, args.warmup, device)
    peaks = measure_memory(measurements, device) if not args.no_memory else {name: float('nan') for name in medians}
    floor = report(medians, peaks, models, device, args)
    for model in models.values():
        if model.teacher_cache is not None:
            shutil.rmtree(model.teacher_cache.path, ignore_errors=True)
    return medians, floor, peaks


if __name__ == '__main__':
    main()
