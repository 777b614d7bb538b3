# Recipe of OFA-KD / FOFA for ViT / MLP (token) students on ImageNet-1K (docs/methods/conventions.md, 'Heterogeneous CIFAR-100 and ImageNet recipes'; Hao840/OFAKD
# configs/imagenet/vit_mlp.yaml, run on 8 GPUs): 300 epochs, batch 128 per GPU x 8 GPUs = 1024, AdamW LR 5e-4 with
# 20 warm-up epochs from 5e-7, cosine to 1e-6, weight decay 0.05 (none on 1-D parameters), gradient clipping at
# norm 5, label smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1 + random erasing 0.25, mixup 0.8 / cutmix 1.0,
# drop / drop-path 0 (the timm defaults of DeiT-T and ResMLP-S12), and a model EMA with decay 0.99996 (mmengine
# EMAHook, momentum = 1 - decay; validation and the saved `state_dict` then use the EMA weights, the raw ones are in
# `ema_state_dict`). With another number of GPUs keep the global batch of 1024. A whole recipe: dataset + runtime.
_base_ = ['../datasets/imagenet.py', '../default_runtime.py']

max_epochs = 300
warmup_epochs = 20
base_lr = 5e-4
warmup_lr = 5e-7
min_lr = 1e-6
ema_decay = 0.99996
train_dataloader = dict(batch_size=128, dataset=dict(pipeline={{_base_.vit_train_pipeline}}))
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0))
# timm's schedule, stepped once per epoch: linear warm-up from warmup_lr, and a cosine over all max_epochs (warm-up
# epochs included) down to min_lr, which the warm-up overrides while it lasts. In mmengine the two schedulers overlap
# and chain; LinearLR reaches the base LR at step `end - 1`, so end = warmup + 1. This matches timm's LR to < 1% of
# the base LR at every epoch (tests/test_paper_configs.py compares them).
param_scheduler = [
    dict(type='LinearLR', start_factor=warmup_lr / base_lr, by_epoch=True, begin=0, end=warmup_epochs + 1),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs, eta_min=min_lr),
]
auto_scale_lr = dict(enable=False, base_batch_size=1024)
model = dict(
    label_smoothing=0.1,
    data_preprocessor=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8),
                                                         dict(type='CutMix', alpha=1.0)])))
custom_hooks = [
    dict(type='TeacherEvalHook'),
    # momentum = 1 - ema_decay = 4e-5 (mmengine: ema = (1 - momentum) * ema + momentum * weights, as timm's
    # ModelEmaV2 with decay 0.99996); update_buffers: buffers are averaged too, as timm does.
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=4e-5, update_buffers=True,
         priority='ABOVE_NORMAL'),
]
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(interval=5, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'))
