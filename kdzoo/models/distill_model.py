"""DistillModel: the mmengine model that runs a student, its teachers, adapters and distillers."""
import pickle
from contextlib import ExitStack, nullcontext

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict

from kdzoo.distillers.base import BARE_TEACHER_OUTPUT
from kdzoo.registry import ADAPTERS, DISTILLERS, MODELS, TASKS, accepted_arguments
from kdzoo.taps.feature import Feature, FeatureSpec
from kdzoo.taps.recorder import TapRecorder
from kdzoo.tasks import BaseTask, stack_labels  # noqa: F401  (stack_labels: its old home, kept for one release)
from .builders import build_model
from .weights import load_weights

NONFINITE_ACTIONS = ('raise', 'skip')
TEACHER_PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def as_float32(features, copy):
    """``{model: {tap: Feature}}`` with every tensor in float32 (a copy when ``copy``)."""
    return {name: {tap: Feature(f.data.to(torch.float32, copy=copy), f.spec) for tap, f in taps.items()}
            for name, taps in features.items()}


def build_at(path, build, cfg):
    """Build ``cfg``; a configuration error names where in the config it comes from."""
    try:
        return build(cfg)
    except (TypeError, ValueError, KeyError, FileNotFoundError, pickle.UnpicklingError) as error:
        message = error.args[0] if error.args else str(error)
        raise type(error)(f"{path}: {message}") from error


def build_component(registry):
    return lambda cfg: registry.build(cfg) if isinstance(cfg, dict) else cfg


def build_task(task, student, **options):
    """The task (:class:`~kdzoo.tasks.BaseTask`) from a registered name, a config dict or an instance; None
    takes the name the student declares (``kdzoo_task``), ``'classification'`` when it declares none.

    ``options`` that are not None (DistillModel's ``label_smoothing``, ``flip_test``) go to the task, which
    must take them: an option the task has no use for is refused, naming the task and what it takes.
    """
    options = {key: value for key, value in options.items() if value is not None}
    if isinstance(task, BaseTask):
        if options:
            raise TypeError(f"{sorted(options)} were given beside a built task {task!r}; set them on the task")
        return task
    if task is None:
        task = getattr(student, 'kdzoo_task', 'classification')
    cfg = dict(type=task) if isinstance(task, str) else dict(task)
    task_class = TASKS.get(cfg.get('type')) if isinstance(cfg.get('type'), str) else cfg.get('type')
    accepted = accepted_arguments(task_class) if task_class is not None else None
    for key, value in options.items():
        if accepted is not None and key not in accepted:
            raise TypeError(f"model.{key}={value!r} has no meaning for the task {cfg['type']!r} "
                            f"({task_class.__name__}, which takes {accepted or 'no options'}); remove model.{key}")
        if key in cfg and cfg[key] != value:
            raise ValueError(f"model.{key}={value!r} and model.task.{key}={cfg[key]!r} differ; set only one")
        cfg[key] = value
    return TASKS.build(cfg)


def build_teacher(cfg):
    """A frozen teacher in eval mode from ``dict(model=..., checkpoint=...)`` or a bare model config."""
    cfg = dict(cfg)
    checkpoint = cfg.pop('checkpoint', None)
    prefix = cfg.pop('checkpoint_prefix', None)
    teacher = build_model(cfg.pop('model') if 'model' in cfg and 'type' not in cfg else cfg)
    if checkpoint:
        load_weights(teacher, checkpoint, prefix=prefix)
    teacher.requires_grad_(False)
    return teacher.eval()


@MODELS.register_module()
class DistillModel(BaseModel):
    """Student + teachers + adapters + distillers, trained through mmengine's Runner.

    Args:
        student: model config (or module); what its forward returns is its task's business (``task``).
        teachers: ``{name: dict(model=<model config>, checkpoint=<path>)}`` (or a bare model config that
            may carry ``checkpoint``). Checkpoints are state dicts, mmengine checkpoints or safetensors,
            loaded with ``weights_only=True``. Teachers are frozen and stay in eval mode.
        distillers: distiller configs (see :class:`~kdzoo.distillers.BaseDistiller`).
        adapters: adapter configs (see :class:`~kdzoo.adapters.BaseAdapter`).
        input_size: (C, H, W) used to probe tap shapes at build time.
        task_loss_weight: weight of the student's task loss (the task's loss); 0 disables it.
        label_smoothing: passed to the task (classification's cross-entropy); refused by a task without it.
        on_nonfinite: ``'raise'`` stops the run when a loss is NaN/inf, naming the term and iteration,
            before the update (so no corrupted checkpoint is written); ``'skip'`` skips that update and puts
            back the buffers (BatchNorm running statistics) that the failed forward changed.
        flip_test: passed to the task (face recognition's prediction also embeds the flipped faces when True,
            its default; docs/face_recognition.md); refused by a task without it.
        teacher_precision: ``'fp32'`` (default), ``'bf16'`` or ``'fp16'``: the teachers' forward runs under
            ``torch.autocast`` in that dtype (bf16 suits CPUs with AVX512-BF16/AMX and recent GPUs); their
            tapped features are handed to the distillers in float32.
        teacher_channels_last: keep the teachers' weights and inputs channels-last (faster convolutions
            on most GPUs and with oneDNN on CPU; no effect on token models).
        teacher_cache: ``dict(path=..., views=K, seed=0, dtype='fp32'|'fp16', topk=None)``: read the teachers'
            tapped outputs per (sample, view) from a cache on disk, running them only for missing entries
            (:class:`~kdzoo.engine.teacher_cache.TeacherCache`, docs/teacher_cache.md). The build fails for
            methods whose teacher side trains or that read more than the cached taps.
        task: what the student is trained and evaluated for (:class:`~kdzoo.tasks.BaseTask`): a name in
            ``kdzoo.registry.TASKS`` (``'classification'``, ``'face_recognition'``), a config dict or a task;
            None takes the student's ``kdzoo_task`` (face recognisers declare ``'face_recognition'``), else
            ``'classification'``. The task gives the labels, the task loss and the predictions (of the
            student, or of a teacher for evaluation hooks) (docs/adding_a_task.md).

    Teacher fast path: unless a teacher adapter trains (APT, AFP), the teachers run under
    ``torch.inference_mode()`` and only their tapped features are copied out of it, so no autograd state
    is kept for them and distillers can save the copies for backward. Every teacher pass of a step runs in
    :meth:`run_teachers`, with ``teacher_precision`` and ``teacher_channels_last`` applied to each; that
    includes the pass with the adapters' prompts off that FOFA and URFM's prompt anchor read
    (``reads_bare_teacher``), which runs frozen and so always in inference mode.

    Parameters that differ by rank on purpose (the task's ``ddp_ignored_parameters``, e.g. face recognition's
    class centres sharded by Partial FC) are excluded from DDP's synchronisation here, on the module that DDP
    wraps, so any wrapper (kdzoo's ``DistillDataParallel``, mmengine's, plain DDP) leaves them alone.
    """

    def __init__(self, student, teachers=None, distillers=(), adapters=(), input_size=(3, 224, 224),
                 task_loss_weight=1.0, label_smoothing=None, on_nonfinite='raise', flip_test=None,
                 teacher_precision='fp32', teacher_channels_last=False, teacher_cache=None, task=None,
                 data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or dict(type='mmpretrain.ClsDataPreprocessor'),
                         init_cfg=init_cfg)
        if on_nonfinite not in NONFINITE_ACTIONS:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_ACTIONS}, got {on_nonfinite!r}")
        self.input_size = tuple(input_size)
        self.task_loss_weight = task_loss_weight
        self.on_nonfinite = on_nonfinite
        if teacher_precision not in TEACHER_PRECISIONS:
            raise ValueError(f"teacher_precision must be one of {list(TEACHER_PRECISIONS)}, got {teacher_precision!r}")
        self.teacher_dtype = TEACHER_PRECISIONS[teacher_precision]
        self.teacher_channels_last = teacher_channels_last
        self.student = build_at('model.student', build_model, student)
        self.task = build_at('model.task', lambda cfg: build_task(cfg, self.student, label_smoothing=label_smoothing,
                                                                  flip_test=flip_test), task)
        self.teachers = nn.ModuleDict({name: build_at(f'model.teachers.{name}', build_teacher, cfg)
                                       for name, cfg in (teachers or {}).items()})
        self.adapters = nn.ModuleList([build_at(f'model.adapters[{i}]', build_component(ADAPTERS), cfg)
                                       for i, cfg in enumerate(adapters)])
        self.distillers = nn.ModuleList([build_at(f'model.distillers[{i}]', build_component(DISTILLERS), cfg)
                                         for i, cfg in enumerate(distillers)])
        if teacher_channels_last:
            self.teachers.to(memory_format=torch.channels_last)
        self._attach_adapters()
        self.recorders = self._build_recorders()
        self._check_bare_teacher_adapters()
        self.teacher_cache = self._build_teacher_cache(teacher_cache, teachers, data_preprocessor)
        self.ddp_ignored_parameters = self.task.ddp_ignored_parameters(self)
        if self.ddp_ignored_parameters:
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, self.ddp_ignored_parameters)

    # ---------------------------------------------------------------- build
    def named_models(self):
        return {'student': self.student, **self.teachers}

    def _attach_adapters(self):
        models = self.named_models()
        for adapter in self.adapters:
            if adapter.target == 'teacher' and 'teacher' not in models:
                if len(self.teachers) != 1:
                    raise KeyError(f"{type(adapter).__name__}: target='teacher' means the only teacher, but the "
                                   f"teachers are {list(self.teachers)}; name one")
                adapter.target = next(iter(self.teachers))
            if adapter.target not in models:
                raise KeyError(f"{type(adapter).__name__} targets {adapter.target!r}, but the models are "
                               f"{list(models)}")
            adapter.attach(models[adapter.target])

    def _build_recorders(self):
        """One recorder per model that any distiller reads; probe shapes; let distillers build connectors."""
        needed = {}
        for distiller in self.distillers:
            distiller.bind(list(self.teachers), adapters=list(self.adapters), models=self.named_models())
            for model_name, taps in distiller.required_taps().items():
                needed.setdefault(model_name, []).extend(taps)
        models = self.named_models()
        recorders = {name: TapRecorder(models[name], taps, name) for name, taps in needed.items() if taps}
        specs = {name: rec.probe(self.input_size) for name, rec in recorders.items()}
        for distiller in self.distillers:
            distiller.check_matching_taps(specs)
            distiller.build(specs.get('student', {}), distiller.by_role(specs))
        return recorders

    def _build_teacher_cache(self, cfg, teacher_configs, preprocessor_config):
        if not cfg:
            return None
        from kdzoo.engine.teacher_cache import TeacherCache
        return build_at('model.teacher_cache', lambda c: TeacherCache.from_config(
            self, c, teacher_configs=teacher_configs, preprocessor_config=preprocessor_config), dict(cfg))

    def _check_bare_teacher_adapters(self):
        """A distiller that reads a teacher without prompts needs every adapter on it to switch them off."""
        for distiller in self.distillers:
            for adapter in self.adapters:
                if distiller.reads_bare_teacher and adapter.target in distiller.teacher_names() \
                        and not hasattr(adapter, 'prompts_disabled'):
                    raise TypeError(f"{type(distiller).__name__} reads teacher {adapter.target!r} without its "
                                    f"adapters, but {type(adapter).__name__} has no prompts_disabled() context "
                                    "to turn it off; give the adapter one or attach it to another model")

    def train(self, mode=True):
        super().train(mode)
        self.teachers.eval()
        return self

    @property
    def teachers_need_grad(self):
        return any(a.trainable and a.target in self.teachers for a in self.adapters)

    # ---------------------------------------------------------------- forward
    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.student(inputs)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def _record(self, name, model, inputs):
        recorder = self.recorders.get(name)
        if recorder is None:
            return model(inputs), {}
        recorder.start()
        try:
            output = model(inputs)
        except BaseException:
            recorder.stop()  # the model's own error (or Ctrl-C) is the one to report, not missing taps
            raise
        return output, recorder.collect()

    def run_teachers(self, inputs):
        """{teacher: {tap: Feature}}, without autograd unless a teacher adapter trains (class docstring)."""
        bare = self._run_bare_teachers(inputs)   # first: APT keeps the prompt outputs of the latest pass
        if self.teachers_need_grad:
            features = as_float32(self._record_teachers(inputs), copy=False)
        else:
            with torch.inference_mode():
                features = self._record_teachers(inputs)
            # Copies made outside inference mode are ordinary tensors that autograd may save for backward.
            features = as_float32(features, copy=True)
        for name, output in bare.items():
            features.setdefault(name, {})[BARE_TEACHER_OUTPUT] = output
        return features

    def teacher_pass(self, inputs):
        """(inputs, autocast context) of a teacher forward: the teacher fast-path settings, in one place."""
        if self.teacher_channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        autocast = (torch.autocast(inputs.device.type, dtype=self.teacher_dtype) if self.teacher_dtype
                    else nullcontext())
        return inputs, autocast

    def _record_teachers(self, inputs):
        inputs, autocast = self.teacher_pass(inputs)
        with autocast:
            return {name: self._record(name, teacher, inputs)[1] for name, teacher in self.teachers.items()
                    if name in self.recorders}

    def _run_bare_teachers(self, inputs):
        """{teacher: Feature of its output} with its adapters' prompts off, for the distillers that read it."""
        names = list(dict.fromkeys(name for d in self.distillers if d.reads_bare_teacher for name in d.teacher_names()))
        if not names:
            return {}
        inputs, autocast = self.teacher_pass(inputs)
        with ExitStack() as prompts_off, torch.inference_mode(), autocast:
            for adapter in self.adapters:
                if adapter.target in names:
                    prompts_off.enter_context(adapter.prompts_disabled())
            outputs = {name: self.teachers[name](inputs) for name in names}
        return {name: Feature(output.to(torch.float32, copy=True),
                              FeatureSpec(BARE_TEACHER_OUTPUT, 'vector', tuple(output.shape[1:])))
                for name, output in outputs.items()}

    def task_loss(self, output, labels, soft_labels):
        """The task's loss of the student's ``output``, times ``task_loss_weight`` (nothing when that is 0)."""
        if not self.task_loss_weight:
            return {}
        return {name: loss * self.task_loss_weight
                for name, loss in self.task.loss(self.student, output, labels, soft_labels).items()}

    def loss(self, inputs, data_samples):
        labels, soft_labels = self.task.targets(data_samples)
        teacher_features = (self.teacher_cache.features(inputs, data_samples) if self.teacher_cache is not None
                            else self.run_teachers(inputs))
        output, student_features = self._record('student', self.student, inputs)
        losses = self.task_loss(output, labels, soft_labels)
        for distiller in self.distillers:
            for name, value in distiller(student_features, teacher_features, labels, inputs).items():
                if name in losses:
                    raise KeyError(f"two loss terms are named {name!r}; give the distillers distinct names")
                losses[name] = value
        return losses

    def predict(self, inputs, data_samples=None, model_name='student'):
        """The task's predictions of the student (or, for evaluation hooks, of a named teacher)."""
        return self.task.predict(self.named_models()[model_name], inputs, data_samples)

    # ---------------------------------------------------------------- training step
    def train_step(self, data, optim_wrapper, wrapper=None):
        """One optimisation step. ``wrapper`` is the DDP wrapper around this model, when there is one
        (:class:`~kdzoo.engine.DistillDataParallel`): the forward runs through it so gradients sync."""
        outer = wrapper or self
        if isinstance(optim_wrapper, OptimWrapperDict):
            return self._train_step_with_discriminators(data, optim_wrapper, outer)
        buffers = self.buffers_before_step()
        with optim_wrapper.optim_context(outer):
            data = self.data_preprocessor(data, True)
            losses = outer._run_forward(data, mode='loss')
        total, log_vars = self.parse_losses(losses)
        if not torch.isfinite(total):
            self._handle_nonfinite(losses, optim_wrapper, data['inputs'], buffers)
            return log_vars
        optim_wrapper.update_params(total)
        return log_vars

    def _train_step_with_discriminators(self, data, optim_wrappers, outer):
        """One step with ``{'model', 'discriminator'}`` wrappers (``DistillOptimWrapperConstructor``).

        The forward gives the model's losses (the distillers keep gradients out of their discriminators);
        then every distiller owning a ``discriminator`` returns ``discriminator_loss()`` on the maps it
        detached in that forward. Both totals are checked for non-finite values before any update; then
        ``'model'`` steps everything but the discriminators and ``'discriminator'`` steps those.
        """
        model_wrapper = optim_wrappers['model']
        buffers = self.buffers_before_step()
        with model_wrapper.optim_context(outer):
            data = self.data_preprocessor(data, True)
            losses = outer._run_forward(data, mode='loss')
        adversary_losses = self._discriminator_losses(optim_wrappers)
        total, log_vars = self.parse_losses(losses)
        adversary_total, adversary_log = self.parse_losses(adversary_losses) if adversary_losses else (None, {})
        if not torch.isfinite(total) or (adversary_total is not None and not torch.isfinite(adversary_total)):
            self._handle_nonfinite({**losses, **adversary_losses}, optim_wrappers, data['inputs'], buffers)
            return log_vars
        model_wrapper.update_params(total)
        if adversary_total is not None:
            optim_wrappers['discriminator'].update_params(adversary_total)
        adversary_log.pop('loss', None)
        return {**log_vars, **adversary_log}

    def _discriminator_losses(self, optim_wrappers):
        owners = [d for d in self.distillers if getattr(d, 'discriminator', None) is not None]
        if not owners:
            return {}
        if 'discriminator' not in optim_wrappers:
            raise KeyError(f"distillers {[type(d).__name__ for d in owners]} own a discriminator, but the "
                           f"optimiser wrappers are {list(optim_wrappers.keys())}; build them with "
                           "optim_wrapper=dict(constructor='DistillOptimWrapperConstructor', ...)")
        losses = {}
        with optim_wrappers['discriminator'].optim_context(self):
            for distiller in owners:
                losses.update(distiller.discriminator_loss())
        return losses

    def buffers_before_step(self):
        """With ``on_nonfinite='skip'``, copies of the buffers a training forward may change (BatchNorm running
        statistics of the student, adapters and distillers; the teachers stay in eval mode), so a skipped step
        can put them back; None otherwise."""
        if self.on_nonfinite != 'skip':
            return None
        return [(buffer, buffer.detach().clone()) for name, buffer in self.named_buffers()
                if not name.startswith('teachers.')]

    def _handle_nonfinite(self, losses, optim_wrapper, inputs, buffers=None):
        iteration = MessageHub.get_current_instance().get_info('iter', 0) + 1
        bad = [f"{name}={value.detach().float().mean().item()}" for name, value in losses.items()
               if not torch.isfinite(value).all()]
        message = (f"non-finite loss at iteration {iteration}: {', '.join(bad) or 'the total'}; "
                   f"{self.first_nonfinite_module(inputs)}")
        if self.on_nonfinite == 'raise':
            raise FloatingPointError(message + "; training stopped before the update, so the last "
                                     "checkpoint is intact. Lower the LR, enable gradient clipping or "
                                     "set model.on_nonfinite='skip'.")
        from mmengine.logging import print_log
        with torch.no_grad():  # the NaN forward (and its replay) already updated the running statistics
            for buffer, saved in buffers or ():
                buffer.copy_(saved)
        print_log(message + '; update and buffer changes skipped', logger='current', level=30)
        optim_wrapper.zero_grad()

    @torch.no_grad()
    def first_nonfinite_module(self, inputs):
        """Replay the batch and name the first module (in execution order) whose output is not finite."""
        found = []

        def check(name):
            def hook(module, args, output):
                tensor = output[0] if isinstance(output, (tuple, list)) else output
                if not found and torch.is_tensor(tensor) and tensor.is_floating_point() \
                        and not torch.isfinite(tensor).all():
                    found.append(name)
            return hook

        handles = [module.register_forward_hook(check(f'{model_name}.{name}' if name else model_name))
                   for model_name, model in self.named_models().items() for name, module in model.named_modules()]
        try:
            for model in self.named_models().values():
                model(inputs)
        finally:
            for handle in handles:
                handle.remove()
        if found:
            return f"first non-finite module output: {found[0]}"
        return "every model output is finite, so the loss computation itself overflowed"

    # ---------------------------------------------------------------- export
    def student_state_dict(self):
        """The bare student's weights, keyed as the student network itself (no wrapper prefix)."""
        student = getattr(self.student, 'model', self.student) \
            if getattr(self.student, 'kdzoo_module_root', None) == 'model' else self.student
        return {k: v.detach().clone() for k, v in student.state_dict().items()}
