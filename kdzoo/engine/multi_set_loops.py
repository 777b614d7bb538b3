"""Validation and test loops over several datasets, each with its own evaluator.

Face recognition is validated on several verification sets at once (LFW, CFP-FP, AgeDB-30, ...; see
docs/face_recognition.md), each a pair list of its own that one metric instance must see alone. mmengine's
``ValLoop`` / ``TestLoop`` take one dataloader; these take a list of dataloaders and a list of evaluators, one
per dataloader, run them in turn and merge the metrics. Give every set's metric its own ``prefix`` so the names
stay apart (``lfw/acc``, ``cfp_fp/acc``, ...); a name produced twice is an error.

    val_cfg = dict(type='MultiSetValLoop')
    val_dataloader = [dict(..., dataset=dict(type='FaceVerificationBin', path='lfw.bin')), ...]
    val_evaluator = [dict(type='FaceVerificationMetric', prefix='lfw'), ...]

While a set runs, ``loop.dataloader`` / ``loop.evaluator`` are that set's (so the logger shows its progress);
outside a run they are the first set's, which is what hooks reading one dataloader (``TeacherEvalHook``) see.
"""
from mmengine.evaluator import Evaluator
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.loops import _parse_losses

from kdzoo.registry import LOOPS


def _as_list(value, what):
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError(f"{what} must be a list with one entry per dataset, got {type(value).__name__}")


def _paired(dataloaders, evaluators):
    dataloaders = _as_list(dataloaders, 'the dataloader of a multi-set loop')
    evaluators = _as_list(evaluators, 'the evaluator of a multi-set loop')
    if not dataloaders or len(dataloaders) != len(evaluators):
        raise ValueError(f"a multi-set loop needs one evaluator per dataloader; got {len(dataloaders)} "
                         f"dataloaders and {len(evaluators)} evaluators")
    return dataloaders, evaluators


class MultiSetMixin:
    """What the val and test loops share: ``stage`` ('val' / 'test') names their hooks and metrics, and
    ``losses_attr`` the base loop's loss record. The base loop builds the first (dataloader, evaluator), this
    the others."""

    stage = None
    losses_attr = None

    def __init__(self, runner, dataloader, evaluator, fp16=False):
        dataloaders, evaluators = _paired(dataloader, evaluator)
        super().__init__(runner, dataloaders[0], evaluators[0], fp16)
        self._build_other_sets(runner, dataloaders, evaluators)

    def run(self):
        self.runner.call_hook(f'before_{self.stage}')
        self.runner.call_hook(f'before_{self.stage}_epoch')
        self.runner.model.eval()
        metrics = self._run_sets(getattr(self, self.losses_attr), self.stage)
        self.runner.call_hook(f'after_{self.stage}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{self.stage}')
        return metrics

    def _build_other_sets(self, runner, dataloaders, evaluators):
        self.sets = [(self.dataloader, self.evaluator)]
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        for dataloader, evaluator in zip(dataloaders[1:], evaluators[1:]):
            if isinstance(dataloader, dict):
                dataloader = runner.build_dataloader(dataloader, seed=runner.seed, diff_rank_seed=diff_rank_seed)
            if not isinstance(evaluator, Evaluator):
                evaluator = runner.build_evaluator(evaluator)
            if hasattr(dataloader.dataset, 'metainfo'):
                evaluator.dataset_meta = dataloader.dataset.metainfo
            self.sets.append((dataloader, evaluator))

    def _run_sets(self, losses, stage):
        metrics = {}
        try:
            for dataloader, evaluator in self.sets:
                self.dataloader, self.evaluator = dataloader, evaluator
                losses.clear()
                for idx, data_batch in enumerate(dataloader):
                    self.run_iter(idx, data_batch)
                set_metrics = evaluator.evaluate(len(dataloader.dataset))
                if losses:
                    set_metrics.update(_parse_losses(losses, stage))
                clash = sorted(set(metrics) & set(set_metrics))
                if clash:
                    raise KeyError(f"metrics {clash} come from two datasets of the {stage} loop; give each "
                                   "dataset's metric its own prefix")
                metrics.update(set_metrics)
        finally:
            self.dataloader, self.evaluator = self.sets[0]
        return metrics


@LOOPS.register_module()
class MultiSetValLoop(MultiSetMixin, ValLoop):
    """``ValLoop`` over a list of dataloaders, each scored by its own evaluator (see the module docstring)."""
    stage, losses_attr = 'val', 'val_loss'


@LOOPS.register_module()
class MultiSetTestLoop(MultiSetMixin, TestLoop):
    """``TestLoop`` over a list of dataloaders, each scored by its own evaluator (see the module docstring)."""
    stage, losses_attr = 'test', 'test_loss'
