# The students' setting: the first 1,000 of the 8,000 training digits (so distillation matters), 8 epochs of
# AdamW with a short warm-up and a cosine decay (30 epochs for the ViT student, resnet-vit/_pair.py), the full
# 2,000-digit test split for validation.
_base_ = ['../../../_base_/datasets/mnist.py', '../../../_base_/default_runtime.py', './models.py']
train_dataloader = dict(dataset=dict(num_items=1000))
max_epochs = 8
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
default_hooks = dict(logger=dict(interval=5))
custom_hooks = [dict(type='TeacherEvalHook')]
