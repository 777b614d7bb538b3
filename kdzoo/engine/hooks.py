"""Hooks kdzoo adds to mmengine's Runner."""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from kdzoo.registry import HOOKS


@HOOKS.register_module()
class TeacherEvalHook(Hook):
    """Evaluates every teacher once on the validation set before training and logs the result.

    Every distillation log then records the teacher it learnt from (docs/methods/conventions.md, 'Teachers'). The metrics go
    to the message hub as ``teacher/<name>/<metric>`` (runtime info), where ``tools/train.py`` reads them
    for its closing summary.
    """

    priority = 'LOW'

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
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
