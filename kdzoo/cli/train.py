"""Train a kdzoo config with mmengine's Runner.

    python -m kdzoo.cli.train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
                                    [--teacher-cfg-options k=v ...] [--launcher none|pytorch|slurm]

A distillation config may name, in ``teacher_configs``, the config that trains each teacher. When that
teacher's ``checkpoint`` does not exist yet, it is trained first (the log says so) and its bare weights are
written to the checkpoint path as safetensors; ``--teacher-cfg-options`` overrides entries of that teacher
config (``--cfg-options`` changes the distillation config only). A teacher checkpoint that is missing and
has no such config stops the run before anything is built. The log ends with the teachers' and the student's results.

tools/train.py is the same command for a source checkout. OpenMP's wait policy is read when torch loads,
which ``import kdzoo`` does before this module runs under ``python -m``: without ``OMP_WAIT_POLICY`` in the
environment the command therefore starts itself again once with ``OMP_WAIT_POLICY=PASSIVE``
(see :mod:`kdzoo.utils.threads`).
"""
import argparse
import os
import os.path as osp
import sys

import kdzoo  # noqa: F401  (registers kdzoo and applies the mmengine fixes)
from mmengine.config import DictAction
from kdzoo.engine.amp import enable_amp
from kdzoo.models.weights import trusted_checkpoints
from kdzoo.tools_support import (add_trust_checkpoint_flag, build_runner, check_teacher_checkpoints,
                                 distributed_teardown, exit_130_on_interrupt, final_summary, load_config,
                                 train_missing_teachers)
from kdzoo.utils.threads import configure_cpu_threads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train (distil) a model from a kdzoo config.')
    parser.add_argument('config', help='config file, e.g. configs/quickstart/kd.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or from the latest checkpoint in the work dir if no CKPT')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: float16 with loss scaling on a GPU, bfloat16 autocast on a CPU')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. train_cfg.max_epochs=2')
    parser.add_argument('--teacher-cfg-options', nargs='+', action=DictAction, default={},
                        help='override entries of the teacher configs in teacher_configs, used when a teacher '
                             'is trained first (--cfg-options does not reach them), e.g. train_cfg.max_epochs=1')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    add_trust_checkpoint_flag(parser)
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_teacher_checkpoints(cfg)
    setup_lines = [configure_cpu_threads()]
    if args.amp:
        setup_lines.append(enable_amp(cfg))
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    with exit_130_on_interrupt(), distributed_teardown(), trusted_checkpoints(args.trust_checkpoint):
        train_missing_teachers(cfg, args.launcher, args.teacher_cfg_options)
        runner = build_runner(cfg, args.launcher)
        for line in setup_lines:
            runner.logger.info(line)
        runner.train()
        final_summary(runner)


def restart_with_passive_openmp_wait():
    """Under ``python -m`` torch is loaded before this module runs; start again with the policy set."""
    if 'OMP_WAIT_POLICY' not in os.environ:
        env = dict(os.environ, OMP_WAIT_POLICY='PASSIVE')
        os.execve(sys.executable, [sys.executable, '-m', 'kdzoo.cli.train', *sys.argv[1:]], env)


if __name__ == '__main__':
    restart_with_passive_openmp_wait()
    main()
