"""The teachers shipped in kdzoo/data/teachers load strictly into the models the quick starts build."""
import os.path as osp

from mmengine.config import Config

from kdzoo.models.distill_model import build_teacher
from run_helpers import ROOT


def shipped_teacher(config):
    """The teacher of ``config`` built and loaded as DistillModel does (strict, weights_only)."""
    cfg = Config.fromfile(osp.join(ROOT, config))
    (name, teacher), = cfg.model.teachers.items()
    assert teacher.checkpoint.startswith('kdzoo/data/teachers/'), teacher.checkpoint
    assert osp.isfile(osp.join(ROOT, teacher.checkpoint))
    return build_teacher(dict(teacher, checkpoint=osp.join(ROOT, teacher.checkpoint)))


def test_orl_teacher_ships_and_fits_the_orl_quick_starts():
    teacher = shipped_teacher('configs/face/orl_urfm_apt.py')
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
