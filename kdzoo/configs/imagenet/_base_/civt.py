# CivT / Co-advise recipe (Ren et al., CVPR 2022; docs/methods/civt.md), on the ImageNet ViT-student recipe: AdamW
# LR 1e-3 for a global batch of 1024 (the code's 5e-4 x 1024 / 512), weight decay 0.05, 300 epochs, 5 linear
# warm-up epochs (the paper; the code uses 20) from 5e-7, cosine to 5e-6 (code), drop-path 0.1, label
# smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25, mixup 0.8 / cutmix 1.0 (the teachers
# see the same mixed images). No EMA and no gradient clipping (neither is in the CivT recipe).
# Pair files set `civt_student`, `conv_teacher` and `inv_teacher` (model configs) and their checkpoints.
_base_ = ['../../_base_/schedules/imagenet_vit_300e.py']
warmup_epochs = 5
base_lr = 1e-3
warmup_lr = 5e-7
min_lr = 5e-6
max_epochs = 300
optim_wrapper = dict(optimizer=dict(lr=base_lr), clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=warmup_lr / base_lr, by_epoch=True, begin=0, end=warmup_epochs + 1),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs, eta_min=min_lr),
]
custom_hooks = [dict(type='TeacherEvalHook')]
