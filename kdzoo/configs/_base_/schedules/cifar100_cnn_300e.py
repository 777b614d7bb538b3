# Recipe of OFA-KD / FOFA for CNN students on CIFAR-100 at 224x224 (docs/methods/conventions.md, 'Heterogeneous
# CIFAR-100 and ImageNet recipes'; Hao840/OFAKD configs/cifar/cnn.yaml + train.py defaults): the shared CNN recipe
# (cnn_sgd.py: SGD, Nesterov, 3 warm-up epochs from 1e-4) with 300 epochs, batch 128 on one GPU, LR 0.05, cosine to
# 1e-3, weight decay 2e-3 (none on 1-D parameters), label smoothing 0.1 (model.label_smoothing).
# This file is a whole recipe: it includes the dataset (CNN train pipeline) and the runtime, so a pair config
# inherits only this file.
_base_ = ['../datasets/cifar100_224.py', './cnn_sgd.py']

max_epochs = 300
base_lr = 0.05
min_lr = 1e-3
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=base_lr, weight_decay=2e-3))
# timm's schedule, stepped once per epoch: linear warm-up from warmup_lr, and a cosine over all max_epochs (warm-up
# epochs included) down to min_lr, which the warm-up overrides while it lasts. In mmengine the two schedulers overlap
# and chain; LinearLR reaches the base LR at step `end - 1`, so end = warmup + 1. This matches timm's LR to < 1% of
# the base LR at every epoch (tests/test_paper_configs.py compares them).
param_scheduler = [
    dict(type='LinearLR', start_factor=_base_.warmup_lr / base_lr, by_epoch=True, begin=0,
         end=_base_.warmup_epochs + 1),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs, eta_min=min_lr),
]
auto_scale_lr = dict(enable=False, base_batch_size=128)
model = dict(label_smoothing=0.1)
default_hooks = dict(checkpoint=dict(interval=10))
