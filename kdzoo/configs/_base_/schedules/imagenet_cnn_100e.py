# Recipe of OFA-KD / FOFA for CNN students on ImageNet-1K (docs/methods/conventions.md, 'Heterogeneous CIFAR-100 and
# ImageNet recipes'; Hao840/OFAKD configs/imagenet/cnn.yaml, run on 8 GPUs): the shared CNN recipe (cnn_sgd.py: SGD,
# Nesterov, 3 warm-up epochs from 1e-4) with 100 epochs, batch 64 per GPU x 8 GPUs = 512, LR 0.1, x0.1 every 30
# epochs, weight decay 1e-4 (none on 1-D parameters), label smoothing 0.1. With another number of GPUs keep the
# global batch of 512 (or set auto_scale_lr.enable=True). A whole recipe: dataset (CNN train pipeline) + runtime
# included.
_base_ = ['../datasets/imagenet.py', './cnn_sgd.py']

max_epochs = 100
base_lr = 0.1
train_dataloader = dict(batch_size=64)
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=base_lr, weight_decay=1e-4))
# timm's schedule, stepped once per epoch: linear warm-up from warmup_lr (mmengine's LinearLR reaches the base LR at
# step `end - 1`, so end = warmup + 1), then x0.1 at epochs 30, 60 and 90 (timm's decay_t 30).
param_scheduler = [
    dict(type='LinearLR', start_factor=_base_.warmup_lr / base_lr, by_epoch=True, begin=0,
         end=_base_.warmup_epochs + 1),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[30, 60, 90], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=512)
model = dict(label_smoothing=0.1)
default_hooks = dict(checkpoint=dict(interval=5))
