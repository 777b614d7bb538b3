"""Train a kdzoo config with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
                                 [--teacher-cfg-options k=v ...] [--launcher none|pytorch|slurm]

A distillation config may name, in ``teacher_configs``, the config that trains each teacher. When that
teacher's ``checkpoint`` does not exist yet, it is trained first (the log says so) and its bare weights are
written to the checkpoint path as safetensors; ``--teacher-cfg-options`` overrides entries of that teacher
config (``--cfg-options`` changes the distillation config only). A teacher checkpoint that is missing and
has no such config stops the run before anything is built. The log ends with the teachers' and the student's results.

The command itself is :mod:`kdzoo.cli.train` (``python -m kdzoo.cli.train`` in an installed kdzoo).
"""
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # read when torch loads OpenMP; see kdzoo.utils.threads

from kdzoo.cli.train import main, parse_args  # noqa: E402,F401

if __name__ == '__main__':
    main()
