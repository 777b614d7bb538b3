# The OFA-KD / FOFA recipe for ViT / MLP (token) students, shared by CIFAR-100 and ImageNet-1K
# (docs/methods/conventions.md, 'Heterogeneous CIFAR-100 and ImageNet recipes'; Hao840/OFAKD
# configs/{cifar,imagenet}/vit_mlp.yaml): 300 epochs, AdamW LR 5e-4 with 20 warm-up epochs from 5e-7 and a cosine to
# min_lr (1e-5, CIFAR-100's; imagenet_vit_300e.py lowers it to 1e-6), weight decay 0.05 (none on 1-D parameters:
# biases and norm weights, as timm's optimizer factory), gradient clipping at norm 5. Every run first evaluates its
# teachers (TeacherEvalHook, docs/methods/conventions.md, 'Teachers'), validates every epoch and keeps the best
# checkpoint. The dataset recipes cifar100_vit_300e.py and imagenet_vit_300e.py add the data (RandAugment + random
# erasing train pipeline), the batch, label smoothing and mixup / cutmix (both live in `model`, which the dataset
# file also sets, so they cannot be declared here: mmengine refuses a key defined by two sibling bases).
_base_ = ['../default_runtime.py']

max_epochs = 300
warmup_epochs = 20
base_lr = 5e-4
warmup_lr = 5e-7
min_lr = 1e-5
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
custom_hooks = [dict(type='TeacherEvalHook')]
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'))
