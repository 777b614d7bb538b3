"""Evaluate the student of a kdzoo config on its test set.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...] [--launcher ...]

CHECKPOINT is a training checkpoint written by tools/train.py or a bare student exported by
tools/export.py (safetensors or state dict). Teachers are not built: evaluation uses the student alone.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # read when torch loads OpenMP; see kdzoo.utils.threads

import kdzoo  # noqa: E402,F401
from kdzoo.tools_support import (add_trust_checkpoint_flag, build_runner, distributed_teardown,  # noqa: E402
                                 load_config, load_student, student_only_config)
from kdzoo.models.weights import trusted_checkpoints  # noqa: E402
from kdzoo.utils.threads import configure_cpu_threads  # noqa: E402
from mmengine.config import DictAction  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate the student of a kdzoo config.')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='tools/train.py checkpoint, or an exported student')
    parser.add_argument('--work-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    add_trust_checkpoint_flag(parser)
    args = parser.parse_args(argv)
    threads = configure_cpu_threads()
    cfg = load_config(args.config, args.cfg_options)
    cfg.work_dir = args.work_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0] + '_test')
    cfg.model = student_only_config(cfg)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'TeacherEvalHook']
    cfg.load_from, cfg.resume = None, False
    with distributed_teardown(), trusted_checkpoints(args.trust_checkpoint):
        student = load_student(cfg, args.checkpoint).student   # before the runner: a bad file fails first
        runner = build_runner(cfg, args.launcher)
        runner.logger.info(threads)
        runner.model.student.load_state_dict(student.state_dict())
        metrics = runner.test()
        runner.logger.info('test results: ' + ', '.join(f'{k}: {v:.4f}' for k, v in metrics.items()))
    return metrics


if __name__ == '__main__':
    main()
