"""Tiny in-process quick-start runs with and without a teacher cache, for the teacher-cache tests."""
import os.path as osp

from mmengine.config import Config

from run_helpers import QUICKSTART

FLIP_PIPELINE = [dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
                 dict(type='mmpretrain.PackInputs')]


def quickstart_cfg(work_dir, teacher, method='kd', cache=None, epochs=2, items=64, batch_size=16, workers=0,
                   pipeline=None, views=1):
    """configs/quickstart/<method>.py shrunk: ``items`` training digits, no validation, no teacher evaluation.

    Without ``cache`` the training set is still a ReplayDataset with the same views and seed, so the live
    run sees exactly the inputs the cached run sees."""
    cfg = Config.fromfile(osp.join(QUICKSTART, f'{method}.py'))
    dataset = dict(type='kdzoo.EmbeddedMNIST', split='train', num_items=items,
                   pipeline=pipeline or [dict(type='mmpretrain.PackInputs')])
    cfg.train_dataloader = dict(cfg.train_dataloader.to_dict(), batch_size=batch_size, num_workers=workers,
                                persistent_workers=workers > 0,
                                dataset=dict(type='kdzoo.ReplayDataset', dataset=dataset, views=views, seed=0))
    cfg.model.teachers.vit.checkpoint = teacher
    if cache:
        cfg.model.teacher_cache = dict(views=views, **cache)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.custom_hooks = []
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.work_dir = str(work_dir)
    return cfg


def train(cfg, resume=False):
    """Train ``cfg`` in this process; returns (every iteration's total loss, final student weights)."""
    from kdzoo.tools_support import bare_model, build_runner
    cfg = cfg.copy()
    cfg.resume = resume
    runner = build_runner(cfg)
    runner.train()
    losses = list(runner.message_hub.get_scalar('train/loss').data[0])
    weights = {k: v.clone() for k, v in bare_model(runner).student.state_dict().items()}
    return losses, weights
