# Fine-tuning schedule shared by the teacher and the student (both start from ImageNet weights): AdamW, weight
# decay 0.05, a linear warm-up over the first epoch and a cosine decay over all epochs; validation and
# a checkpoint every epoch, the best top-1 kept. A starting point, not a tuned recipe: the LR and the number of
# epochs are the knobs (e.g. --cfg-options train_cfg.max_epochs=30 optim_wrapper.optimizer.lr=5e-4).
_base_ = ['../_base_/default_runtime.py']
max_epochs = 20
lr = 1e-4
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    # no T_max: the decay spans begin to end, and end is train_cfg.max_epochs, also when it is overridden
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, eta_min=lr * 0.01, convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2, save_last=True, save_best='accuracy/top1',
                                     rule='greater'))
auto_scale_lr = dict(enable=False, base_batch_size=32)
