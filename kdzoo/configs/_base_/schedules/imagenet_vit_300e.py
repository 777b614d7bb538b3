# Recipe of OFA-KD / FOFA for ViT / MLP (token) students on ImageNet-1K (docs/methods/conventions.md,
# 'Heterogeneous CIFAR-100 and ImageNet recipes'; Hao840/OFAKD configs/imagenet/vit_mlp.yaml, run on 8 GPUs): the
# shared ViT / MLP recipe (vit_mlp_adamw.py: 300 epochs, AdamW 5e-4, 20 warm-up epochs from 5e-7, weight decay 0.05,
# gradient clipping at norm 5) with a cosine to 1e-6, batch 128 per GPU x 8 GPUs = 1024, label smoothing 0.1,
# RandAugment rand-m9-mstd0.5-inc1 + random erasing 0.25, mixup 0.8 / cutmix 1.0, drop / drop-path 0 (the timm
# defaults of DeiT-T and ResMLP-S12), and a model EMA with decay 0.99996 (mmengine EMAHook, momentum = 1 - decay;
# validation and the saved `state_dict` then use the EMA weights, the raw ones are in `ema_state_dict`). With
# another number of GPUs keep the global batch of 1024. A whole recipe: dataset + runtime.
_base_ = ['../datasets/imagenet.py', './vit_mlp_adamw.py']

min_lr = 1e-6
ema_decay = 0.99996
# The shared schedule with the lower floor.
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], eta_min=min_lr)]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline={{_base_.vit_train_pipeline}}))
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
default_hooks = dict(checkpoint=dict(interval=5))
