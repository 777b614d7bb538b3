# Recipe of OFA-KD / FOFA for CNN students on CIFAR-100 at 224x224 (docs/methods/conventions.md, 'Heterogeneous CIFAR-100 and ImageNet recipes'; Hao840/OFAKD
# configs/cifar/cnn.yaml + train.py defaults): 300 epochs, batch 128 on one GPU, SGD (momentum 0.9, Nesterov as
# timm's 'sgd'), LR 0.05 with 3 warm-up epochs from 1e-4 (train.py's warmup_lr), cosine to 1e-3, weight decay
# 2e-3 (none on 1-D parameters: biases and norm weights, as timm's optimizer factory), label smoothing 0.1
# (model.label_smoothing), no colour jitter, no mixup.
# This file is a whole recipe: it includes the dataset (CNN train pipeline) and the runtime, so a pair config
# inherits only this file. Every run first evaluates its teachers (TeacherEvalHook, docs/methods/conventions.md, 'Teachers').
_base_ = ['../datasets/cifar100_224.py', '../default_runtime.py']

max_epochs = 300
warmup_epochs = 3
base_lr = 0.05
warmup_lr = 1e-4
min_lr = 1e-3
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.9, nesterov=True, weight_decay=2e-3),
    paramwise_cfg=dict(flat_decay_mult=0.0))
# timm's schedule, stepped once per epoch: linear warm-up from warmup_lr, and a cosine over all max_epochs (warm-up
# epochs included) down to min_lr, which the warm-up overrides while it lasts. In mmengine the two schedulers overlap
# and chain; LinearLR reaches the base LR at step `end - 1`, so end = warmup + 1. This matches timm's LR to < 1% of
# the base LR at every epoch (tests/test_paper_configs.py compares them).
param_scheduler = [
    dict(type='LinearLR', start_factor=warmup_lr / base_lr, by_epoch=True, begin=0, end=warmup_epochs + 1),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs, eta_min=min_lr),
]
auto_scale_lr = dict(enable=False, base_batch_size=128)
model = dict(label_smoothing=0.1)
custom_hooks = [dict(type='TeacherEvalHook')]
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'))
