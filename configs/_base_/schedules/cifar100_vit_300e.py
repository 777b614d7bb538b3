# Recipe of OFA-KD / FOFA for ViT / MLP (token) students on CIFAR-100 at 224x224 (docs/methods/conventions.md, 'Heterogeneous CIFAR-100 and ImageNet recipes'; Hao840/OFAKD
# configs/cifar/vit_mlp.yaml): 300 epochs, batch 128 on one GPU, AdamW LR 5e-4 with 20 warm-up epochs from 5e-7,
# cosine to 1e-5, weight decay 0.05 (none on 1-D parameters, as timm's optimizer factory), gradient clipping at
# norm 5, label smoothing 0.1 (model.label_smoothing, also applied to the mixed labels as timm's Mixup does),
# RandAugment rand-m9-mstd0.5-inc1 + random erasing 0.25 (the dataset's `vit_train_pipeline`), mixup 0.8 / cutmix
# 1.0 (one of the two per batch, as timm's switch_prob 0.5) in the data preprocessor.
# A whole recipe: dataset + runtime included.
_base_ = ['../datasets/cifar100_224.py', '../default_runtime.py']

max_epochs = 300
warmup_epochs = 20
base_lr = 5e-4
warmup_lr = 5e-7
min_lr = 1e-5
train_dataloader = dict(dataset=dict(pipeline={{_base_.vit_train_pipeline}}))
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
auto_scale_lr = dict(enable=False, base_batch_size=128)
model = dict(
    label_smoothing=0.1,
    data_preprocessor=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8),
                                                         dict(type='CutMix', alpha=1.0)])))
custom_hooks = [dict(type='TeacherEvalHook')]
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'))
