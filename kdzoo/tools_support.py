"""What tools/train.py, test.py and export.py share: runner construction, teacher-first training, export."""
import ast
import contextlib
import difflib
import inspect
import os
import os.path as osp
import sys

import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from kdzoo.engine.runner import KdzooRunner
from kdzoo.taps.recorder import unwrap
from kdzoo.utils.compat import (CONFIGS_DIR, KDZOO_PREFIX, init_cpu_distributed, kdzoo_config_path,
                                needs_cpu_distributed)

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))


# The top-level keys mmengine's Runner reads: those Runner.from_cfg passes to Runner.__init__, and those the
# Runner reads later with ``self.cfg.get``; then kdzoo's own (``custom_imports``: load_config imports it after the
# options, so ``--cfg-options custom_imports.imports=[my_module]`` brings in a module of one's own).
RUNNER_KEYS = tuple(inspect.signature(Runner.__init__).parameters)[1:-1] + (
    'model_wrapper_cfg', 'sync_bn', 'find_unused_parameters', 'compile', 'efficient_conv_bn_eval',
    'activation_checkpointing')
KDZOO_KEYS = ('teacher_configs', 'custom_imports')


def add_trust_checkpoint_flag(parser):
    """``--trust-checkpoint``: the one opt-in to unpickling checkpoints in full (train, test, export)."""
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='unpickle checkpoint files in full (weights_only=False): this RUNS ANY CODE '
                             'stored in them. Only for files you made yourself that kdzoo refused because '
                             'they hold objects outside its allow-list')


def load_config(path, options=None):
    """The config at ``path`` with ``options`` (``--cfg-options``) merged in; what every tool reads.

    A syntax error names the config file (or ``_base_`` file) and line, where mmengine says ``<unknown>``.
    A top-level option key that neither the config defines nor anything reads is refused, naming the key.
    ``path`` may name one of kdzoo's configs as ``kdzoo::quickstart/kd.py``, as a ``_base_`` can.
    """
    if path.startswith(KDZOO_PREFIX):
        path = kdzoo_config_path(path)
    check_config_syntax(path)
    cfg = Config.fromfile(path, import_custom_modules=False)  # imported below, also from the config's folder
    if options:
        check_option_keys(cfg, options)
        cfg.merge_from_dict(options)
    import_custom_modules(cfg, path)
    cfg = apply_config_resolvers(cfg)
    check_data_arguments(cfg)
    return resolve_shipped_paths(cfg)


def apply_config_resolvers(cfg):
    """Run every registered config resolver on ``cfg``, after the options (so every tool, and a teacher
    trained first, sees the result): a vertical expands its own top-level keys there, e.g. the face configs'
    ``face_data`` (kdzoo/face/datasets/custom_config.py)."""
    from kdzoo.registry import CONFIG_RESOLVERS
    CONFIG_RESOLVERS.import_from_location()
    for resolve in CONFIG_RESOLVERS.module_dict.values():
        cfg = resolve(cfg)
    return cfg


DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def check_data_arguments(cfg):
    """Refuse a misspelt dataset or transform argument when the config is loaded, naming where it is.

    mmengine's Runner builds the datasets only when a loop starts, after the models and teachers, and through
    its own builder, which reports an unknown argument as a bare ``TypeError`` (or, for a class taking
    ``**kwargs``, not at all). Types that cannot be resolved here are left to the Runner.
    """
    from kdzoo.registry import DATASETS, TRANSFORMS, check_arguments
    for loader in DATALOADERS:
        loader_cfg = cfg.get(loader)
        if isinstance(loader_cfg, dict) and isinstance(loader_cfg.get('dataset'), dict):
            check_dataset_arguments(loader_cfg['dataset'], f'{loader}.dataset', DATASETS, TRANSFORMS, check_arguments)


def check_dataset_arguments(dataset, where, datasets, transforms, check_arguments):
    """:func:`check_data_arguments` for one dataset config, its pipeline and the datasets it wraps."""
    checks = [(dataset, where, datasets)]
    checks += [(step, f'{where}.pipeline[{i}]', transforms) for i, step in enumerate(dataset.get('pipeline') or ())
               if isinstance(step, dict)]
    for item, place, registry in checks:
        kind = item.get('type')
        target = registry.get(kind) if isinstance(kind, str) else None
        if target is None:
            continue
        try:
            check_arguments(item, target, registry.name)
        except TypeError as error:
            raise TypeError(f"{place}: {error}") from error
    if isinstance(dataset.get('dataset'), dict):
        check_dataset_arguments(dataset['dataset'], f'{where}.dataset', datasets, transforms, check_arguments)
    for i, inner in enumerate(dataset.get('datasets') or ()):
        if isinstance(inner, dict):
            check_dataset_arguments(inner, f'{where}.datasets[{i}]', datasets, transforms, check_arguments)


def resolve_shipped_paths(cfg):
    """Make the teacher configs and checkpoints that kdzoo ships reachable from any working directory.

    kdzoo's configs name them relative to the repository root (``configs/quickstart/vit_teacher.py``,
    ``kdzoo/data/teachers/...``), so a config of your own that inherits one (``_base_ = 'kdzoo::...'``) and
    runs from another folder would miss them: such a path is taken from the kdzoo package when it does not
    exist from the working directory. Every other relative path (``work_dirs/...``, data roots) stays
    relative to the working directory.
    """
    for name, config in (cfg.get('teacher_configs') or {}).items():
        cfg.teacher_configs[name] = shipped_path(config)
    for teacher in ((cfg.get('model') or {}).get('teachers') or {}).values():
        if isinstance(teacher, dict) and teacher.get('checkpoint'):
            teacher['checkpoint'] = shipped_path(teacher['checkpoint'])
    return cfg


def shipped_path(path):
    """``configs/...`` or ``kdzoo/...`` from the kdzoo package when the path is missing here and the file is
    there; any other path unchanged (a missing one is then reported as written)."""
    if not isinstance(path, str) or osp.exists(path):
        return path
    for prefix, folder in (('configs/', CONFIGS_DIR), ('kdzoo/', PACKAGE_DIR)):
        if path.startswith(prefix) and osp.exists(osp.join(folder, path[len(prefix):])):
            return osp.join(folder, path[len(prefix):])
    return path


def import_custom_modules(cfg, path):
    """Import the config's ``custom_imports``, finding a module that sits beside the config file from any
    working directory: the config's folder goes first on ``sys.path`` (and stays, for the module's own imports),
    as a script's folder does for ``python script.py``. Done only for configs that have ``custom_imports``."""
    custom_imports = cfg.get('custom_imports')
    if not custom_imports:
        return
    folder = osp.dirname(osp.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from mmengine.utils import import_modules_from_strings
    try:
        import_modules_from_strings(**custom_imports)
    except ImportError as error:
        raise ImportError(f"custom_imports {custom_imports.get('imports')} of {path}: {error}. Modules are "
                          f"looked for beside the config (in {folder}), among the installed packages and on "
                          "PYTHONPATH: put the module in one of these places, or fix its name") from error


def check_config_syntax(path):
    """Parse ``path`` and its literal ``_base_`` files; a SyntaxError carries the file and line."""
    if not path.endswith('.py') or not osp.isfile(path):
        return  # mmengine reports a missing file or a non-Python config itself
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as error:
        raise SyntaxError(f"config file {path}, line {error.lineno}: {error.msg}",
                          (path, error.lineno, error.offset, error.text)) from None
    for base in literal_bases(tree):
        check_config_syntax(kdzoo_config_path(base) if base.startswith(KDZOO_PREFIX)
                            else osp.normpath(osp.join(osp.dirname(path), base)))


def literal_bases(tree):
    """The ``_base_`` file names a parsed config lists literally (others are left to mmengine)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '_base_' for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return []
            return [bases] if isinstance(bases, str) else [b for b in bases if isinstance(b, str)]
    return []


def check_option_keys(cfg, options):
    """Refuse an option whose top-level key the config lacks and no component reads (a typo, silently ignored)."""
    known = set(cfg.keys()) | set(RUNNER_KEYS) | set(KDZOO_KEYS)
    for key, value in options.items():
        top = key.split('.')[0]
        if top in known:
            continue
        close = difflib.get_close_matches(top, sorted(known), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ''
        raise ValueError(f"--cfg-options {key}={value!r}: the config defines no top-level key {top!r} and neither "
                       f"mmengine's Runner nor kdzoo reads one, so the option would be ignored.{hint} Override a "
                       "key the config has (e.g. train_cfg.max_epochs=2), or define the key in the config file.")


def ddp_wrapper_cfg(cfg, on_cpu):
    """DistillModel runs in DistillDataParallel (its own train_step stays in charge); DDP on CPU takes no
    ``device_ids``, which mmengine would otherwise fill with the local rank."""
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    if cfg.model.get('type') == 'DistillModel':
        wrapper.setdefault('type', 'kdzoo.DistillDataParallel')  # mmengine looks it up in its root registry
    if on_cpu:
        wrapper['device_ids'] = None
    return wrapper or None


def build_runner(cfg, launcher='none'):
    """A Runner for ``cfg``; on a CPU-only machine a distributed launch uses gloo (compat fix 2)."""
    cfg.launcher = launcher
    on_cpu = needs_cpu_distributed(launcher)
    if on_cpu and cfg.get('sync_bn'):
        raise ValueError(f"sync_bn={cfg.sync_bn!r} needs GPUs: torch's SyncBatchNorm does not run on CPU tensors, "
                         "and this distributed run is on CPUs (gloo). Remove sync_bn (each process then normalises "
                         "its own batch), or train BatchNorm-free models; see docs/distributed.md")
    if on_cpu:
        init_cpu_distributed(launcher)
        cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if launcher != 'none':
        cfg.model_wrapper_cfg = ddp_wrapper_cfg(cfg, on_cpu)
    from kdzoo.engine.teacher_cache import configure_teacher_cache
    configure_teacher_cache(cfg)  # model.teacher_cache: replayable training set + TeacherCacheHook
    return KdzooRunner.from_cfg(cfg)


def bare_model(runner):
    return unwrap(runner.model)


def export_student(model, path):
    """Write the bare student (no teachers or connectors) as safetensors or a state dict.

    Adapters on the student (CivT's tokens and heads) change its forward but are not part of the student
    network's keys: their weights go to a second file, ``<name>.adapters.<ext>``, and the log says so.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    state = {k: v.contiguous() for k, v in model.student_state_dict().items()}
    if len(model.adapters):
        stem, ext = osp.splitext(path)
        _save_tensors({k: v.detach().contiguous() for k, v in model.adapters.state_dict().items()},
                      f'{stem}.adapters{ext}')
        print_log(f"the student's adapters ({', '.join(type(a).__name__ for a in model.adapters)}) are "
                  f"part of its forward; their weights were written to {stem}.adapters{ext}", logger='current')
    _save_tensors(state, path)
    return path


def _save_tensors(state, path):
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(state, path)
    else:
        import torch
        torch.save(state, path)


def check_teacher_checkpoints(cfg):
    """Fail before anything is built when a teacher's checkpoint is missing and no config can train it."""
    trainable = cfg.get('teacher_configs') or {}
    for name, teacher in (cfg.model.get('teachers') or {}).items():
        checkpoint = teacher.get('checkpoint') if isinstance(teacher, dict) else None
        if checkpoint and not osp.isfile(checkpoint) and name not in trainable:
            raise FileNotFoundError(
                f"model.teachers.{name}.checkpoint: {checkpoint!r} does not exist (working directory "
                f"{os.getcwd()}). Give the path of the teacher's weights (safetensors, a state dict or a "
                f"tools/train.py checkpoint), or name the config that trains it in teacher_configs={{{name!r}: "
                "'path/to/teacher_config.py'}} so it is trained first.")


def train_missing_teachers(cfg, launcher='none', teacher_cfg_options=None):
    """Train each teacher named in ``cfg.teacher_configs`` whose checkpoint file does not exist yet.

    ``teacher_cfg_options`` (``--teacher-cfg-options`` of tools/train.py) override entries of those teacher
    configs, as ``--cfg-options`` does for the distillation config (which does not reach them).
    """
    for name, teacher_config in (cfg.get('teacher_configs') or {}).items():
        checkpoint = cfg.model.teachers[name].get('checkpoint')
        if not checkpoint or osp.isfile(checkpoint):
            continue
        print_log(f"teacher {name!r}: checkpoint {checkpoint} not found, so it is trained first with "
                  f"{teacher_config}" + (f" and --teacher-cfg-options {dict(teacher_cfg_options)}"
                                         if teacher_cfg_options else ''), logger='current')
        teacher_cfg = load_config(teacher_config, teacher_cfg_options)
        teacher_cfg.work_dir = osp.join(osp.dirname(checkpoint) or '.', f'{name}_teacher_run')
        runner = build_runner(teacher_cfg, launcher)
        runner.train()
        if runner.rank == 0:
            export_student(bare_model(runner), checkpoint)
            print_log(f"teacher {name!r}: trained, weights written to {checkpoint}", logger='current')
        _barrier_if_distributed()


def _barrier_if_distributed():
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def final_summary(runner):
    """Log the teachers' and the student's last validation results in one closing line."""
    hub = runner.message_hub
    parts = [f"teacher {key.split('/')[1]} {key.split('/', 2)[2]}: {value:.4g}"
             for key, value in hub.runtime_info.items() if key.startswith('teacher/')]
    parts += [f"student {key[4:]}: {hub.get_scalar(key).current():.4g}"
              for key in hub.log_scalars if key.startswith('val/') and 'time' not in key]
    if parts:
        runner.logger.info('kdzoo summary: ' + '; '.join(parts))


def student_adapter_indices(cfg):
    """Positions in ``model.adapters`` of the adapters that change the student (e.g. CivT's tokens)."""
    return [i for i, adapter in enumerate(cfg.model.get('adapters') or [])
            if adapter.get('target', 'student') == 'student']


def student_only_config(cfg):
    """The config's model without teachers, distillers or teacher adapters: what evaluation and export need.

    Adapters on the student stay: they are part of its forward."""
    model_cfg = cfg.model.copy()
    # Item assignment replaces; ConfigDict.update would merge {} into the teachers and keep them all.
    model_cfg['teachers'] = {}
    model_cfg['distillers'] = []
    model_cfg['adapters'] = [cfg.model.adapters[i] for i in student_adapter_indices(cfg)]
    model_cfg.pop('teacher_cache', None)   # no teachers, nothing to cache
    return model_cfg


def load_student(cfg, checkpoint):
    """A student-only DistillModel with the student weights of ``checkpoint``.

    ``checkpoint`` is a bare student (safetensors or a state dict) or a training checkpoint written by
    tools/train.py, both read with weights_only=True (see :func:`kdzoo.models.weights.load_checkpoint_file`).
    """
    from kdzoo.models.weights import checkpoint_source, load_state, read_state_dict
    from kdzoo.registry import MODELS
    with checkpoint_source('CHECKPOINT'):
        state = read_state_dict(checkpoint)
    model = MODELS.build(student_only_config(cfg))
    student_keys = {k: v for k, v in state.items() if k.startswith('student.')} or state
    load_state(model.student, student_keys, checkpoint)
    for position, original in enumerate(student_adapter_indices(cfg)):
        load_state(model.adapters[position], state, checkpoint, prefix=f'adapters.{original}.')
    return model


class DeployedStudent(nn.Module):
    """The student as deployed: its network plus the adapters that change its forward (CivT's tokens and heads).

    The adapters act through hooks on the student; holding them here makes their parameters part of this
    module, so an exported graph carries them as weights (traced from the student alone they are foreign
    tensors, which ONNX export refuses).
    """

    def __init__(self, model):
        super().__init__()
        self.student = model.student
        self.adapters = model.adapters

    def forward(self, images):
        return self.student(images)


def export_onnx(model, path, batch_size=2):
    """Write the student with its adapters as ONNX (batch dimension dynamic); returns the sample batch used."""
    import torch
    deployed = DeployedStudent(model).eval()
    sample = torch.randn(batch_size, *model.input_size)
    with torch.no_grad():
        torch.onnx.export(deployed, (sample,), path, dynamo=False, input_names=['images'],
                          output_names=['output'], dynamic_axes={'images': {0: 'batch'}, 'output': {0: 'batch'}})
    return sample


def deployment_info(cfg, model):
    """What deploying the exported student needs besides its weights: input size and normalisation.

    The exported networks take normalised images; the normalisation stays outside them, as in training (the
    data preprocessor): ``images = (pixels - mean) / std`` per channel, pixels in 0..255, one (C, H, W) image
    of ``input_size`` each. ``to_rgb`` is the preprocessor's flag: True means colour channels were flipped
    (BGR to RGB) before that, as mmcv loads colour images BGR.
    """
    preprocessor = dict(cfg.model.get('data_preprocessor') or {})
    output = model.task.output   # what the student's forward returns: 'logits' or 'embedding'
    return dict(input_name='images', output_name='output', input_size=list(model.input_size),
                mean=list(preprocessor.get('mean') or []), std=list(preprocessor.get('std') or []),
                to_rgb=bool(preprocessor.get('to_rgb', False)), pixel_range=[0, 255], output=output,
                normalisation='images = (pixels - mean) / std, per channel, before the network')


def write_deployment_info(info, json_path, onnx_path=None):
    """``info`` as a JSON file beside the weights and, when there is an ONNX file, in its metadata_props."""
    import json
    with open(json_path, 'w') as f:
        json.dump(info, f, indent=2)
    if onnx_path:
        import onnx
        graph = onnx.load(onnx_path)
        onnx.helper.set_model_props(graph, {f'kdzoo.{key}': json.dumps(value) for key, value in info.items()})
        onnx.save(graph, onnx_path)
    return json_path


def onnx_max_difference(model, path, sample):
    """Largest absolute difference between onnxruntime's and PyTorch's outputs on ``sample``."""
    import onnxruntime
    import torch
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    onnx_output = session.run(None, {'images': sample.numpy()})[0]
    with torch.no_grad():
        torch_output = DeployedStudent(model).eval()(sample).numpy()
    return float(abs(onnx_output - torch_output).max())


@contextlib.contextmanager
def exit_130_on_interrupt(what='training'):
    """Ctrl-C ends the tool with one line and exit status 130 (128 + SIGINT), as shells expect, not a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{what} interrupted (Ctrl-C); exiting with status 130\n")
        raise SystemExit(130) from None


@contextlib.contextmanager
def distributed_teardown():
    """Destroy the process group when the block ends: left to interpreter shutdown, gloo's threads can abort.

    After a clean run every rank first meets at a barrier, so rank 0, which hosts the rendezvous store, stays
    up until the others are done with it (without it rank 0 aborted at exit in about one two-process CPU run in
    four). After an error there is no barrier: the other ranks may never reach it.
    """
    import torch.distributed as dist

    def initialised():
        return dist.is_available() and dist.is_initialized()

    try:
        yield
        if initialised():
            dist.barrier()
    finally:
        if initialised():
            dist.destroy_process_group()
