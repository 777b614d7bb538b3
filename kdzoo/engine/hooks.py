"""Hooks kdzoo adds to mmengine's Runner."""
import torch
from mmengine.hooks import Hook

from kdzoo.registry import HOOKS
from kdzoo.taps.recorder import unwrap


@HOOKS.register_module()
class TeacherEvalHook(Hook):
    """Evaluates every teacher once on the validation set before training and logs the result.

    Every distillation log then records the teacher it learnt from (docs/methods/conventions.md, 'Teachers'). The metrics go
    to the message hub as ``teacher/<name>/<metric>`` (runtime info), where ``tools/train.py`` reads them
    for its closing summary.
    """

    priority = 'LOW'

    def before_train(self, runner):
        model = unwrap(runner.model)
        if not getattr(model, 'teachers', None) or runner.val_loop is None:
            return
        for name in model.teachers:
            metrics = self.evaluate(runner, model, name)
            for key, value in metrics.items():
                runner.message_hub.update_info(f'teacher/{name}/{key}', value)
            shown = ', '.join(f'{k}: {v:.4f}' if isinstance(v, float) else f'{k}: {v}' for k, v in metrics.items())
            runner.logger.info(f'teacher {name!r} on the validation set: {shown}')

    @torch.no_grad()
    def evaluate(self, runner, model, name):
        # The Runner leaves the model in training mode before training, where a teacher adapter such as APT
        # inserts its prompts; the teacher is scored as it was trained, in eval mode.
        was_training = model.training
        model.eval()
        try:
            loop = runner.val_loop
            for batch in loop.dataloader:
                data = model.data_preprocessor(batch, False)
                outputs = model.predict(data['inputs'], data['data_samples'], model_name=name)
                loop.evaluator.process(data_samples=outputs, data_batch=batch)
            return loop.evaluator.evaluate(len(loop.dataloader.dataset))
        finally:
            model.train(was_training)


def nonfinite_entries(state_dict, limit=10):
    """Names (at most ``limit``) of the floating-point tensors in ``state_dict`` holding NaN or inf."""
    bad = [name for name, value in state_dict.items()
           if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()]
    return bad[:limit] + ([f'... {len(bad) - limit} more'] if len(bad) > limit else [])


@HOOKS.register_module()
class FiniteWeightsHook(Hook):
    """Stops a run before it saves a model holding NaN or inf (weights or buffers such as BatchNorm statistics).

    ``on_nonfinite`` guards the losses; this guards what is written: a checkpoint is checked before it is saved,
    and the model once more when training ends. Registered by ``configs/_base_/default_runtime.py``.
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint):
        self.check(checkpoint.get('state_dict', {}), 'the checkpoint about to be saved')

    def after_train(self, runner):
        model = unwrap(runner.model)
        self.check(model.state_dict(), 'the trained model')

    @staticmethod
    def check(state_dict, what):
        bad = nonfinite_entries(state_dict)
        if bad:
            raise FloatingPointError(f"{what} holds non-finite values in {', '.join(bad)}; nothing was saved. "
                                     "Lower the learning rate or enable gradient clipping; with "
                                     "model.on_nonfinite='raise' (the default) the run stops at the first "
                                     "non-finite loss instead.")
