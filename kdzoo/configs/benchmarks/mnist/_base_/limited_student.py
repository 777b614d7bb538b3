# The students' setting: the first 1,000 of the 8,000 training digits (so distillation matters), 8 epochs of the
# quick start's AdamW + cosine schedule with a shorter warm-up (30 epochs for the ViT student, resnet-vit/_pair.py),
# the full 2,000-digit test split for validation.
_base_ = ['../../../_base_/datasets/mnist.py', '../../../_base_/schedules/quickstart.py',
          '../../../_base_/default_runtime.py', './models.py']
train_dataloader = dict(dataset=dict(num_items=1000))
max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# A 20-iteration warm-up, then the quick start's cosine (it ends at train_cfg.max_epochs).
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20), _base_.param_scheduler[1]]
default_hooks = dict(logger=dict(interval=5))
custom_hooks = [dict(type='TeacherEvalHook')]
