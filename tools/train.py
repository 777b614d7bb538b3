"""Train a kdzoo config with mmengine's Runner, from a source checkout.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
                                 [--teacher-cfg-options k=v ...] [--launcher none|pytorch|slurm]

The command itself, with what it does about teachers that are not trained yet, is :mod:`kdzoo.cli.train`
(``python -m kdzoo.cli.train`` in an installed kdzoo).
"""
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # read when torch loads OpenMP; see kdzoo.utils.threads

from kdzoo.cli.train import main, parse_args  # noqa: E402,F401

if __name__ == '__main__':
    main()
