"""A test hook that writes every rank's per-iteration training loss to <work_dir>/losses_rank<r>.json.

mmengine logs rank 0's loss only; the parity test needs both ranks' to compare with one process."""
import json
import os.path as osp

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class LossRecorderHook(Hook):

    def before_train(self, runner):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(float(outputs['loss']))

    def after_train(self, runner):
        with open(osp.join(runner.work_dir, f'losses_rank{runner.rank}.json'), 'w') as f:
            json.dump(self.losses, f)
