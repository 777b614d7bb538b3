# Recipe of OFA-KD / FOFA for CNN students on ImageNet-1K (docs/methods/conventions.md, 'Heterogeneous CIFAR-100 and ImageNet recipes'; Hao840/OFAKD configs/imagenet/cnn.yaml,
# run on 8 GPUs): 100 epochs, batch 64 per GPU x 8 GPUs = 512, SGD (momentum 0.9, Nesterov as timm's 'sgd'),
# LR 0.1 with 3 warm-up epochs from 1e-4, x0.1 every 30 epochs, weight decay 1e-4 (none on 1-D parameters),
# label smoothing 0.1, no colour jitter, no mixup. With another number of GPUs keep the global batch of 512
# (or set auto_scale_lr.enable=True). A whole recipe: dataset (CNN train pipeline) + runtime included.
_base_ = ['../datasets/imagenet.py', '../default_runtime.py']

max_epochs = 100
warmup_epochs = 3
base_lr = 0.1
warmup_lr = 1e-4
train_dataloader = dict(batch_size=64)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.9, nesterov=True, weight_decay=1e-4),
    paramwise_cfg=dict(flat_decay_mult=0.0))
# timm's schedule, stepped once per epoch: linear warm-up from warmup_lr (mmengine's LinearLR reaches the base LR at
# step `end - 1`, so end = warmup + 1), then x0.1 at epochs 30, 60 and 90 (timm's decay_t 30).
param_scheduler = [
    dict(type='LinearLR', start_factor=warmup_lr / base_lr, by_epoch=True, begin=0, end=warmup_epochs + 1),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[30, 60, 90], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=512)
model = dict(label_smoothing=0.1)
custom_hooks = [dict(type='TeacherEvalHook')]
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(interval=5, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'))
