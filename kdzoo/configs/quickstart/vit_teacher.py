# Trains the quick-start ViT teacher (configs/quickstart/_models.py) on all 8,000 training digits: 20 epochs at
# LR 1e-3 with random shifts of up to 2 pixels (no distillation: a DistillModel with a student and no teachers is
# plain supervised training). Without the shifts a ViT this size overfits the 8,000 digits (10 epochs: 89.5 %
# top-1). kdzoo ships the result, kdzoo/data/teachers/mnist_vit_teacher.safetensors (how it was made and its
# numbers: kdzoo/data/teachers/README.md); the distillation configs train it first only when that file is missing.
#   python tools/train.py configs/quickstart/vit_teacher.py
_base_ = ['./_mnist.py']
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
train_dataloader = dict(dataset=dict(pipeline=[dict(type='mmpretrain.RandomCrop', crop_size=32, padding=2),
                                               dict(type='mmpretrain.PackInputs')]))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
# A 125-iteration warm-up (one epoch), then the quick start's cosine (it ends at train_cfg.max_epochs).
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=125), _base_.param_scheduler[1]]
model = dict(student={{_base_.vit_teacher}})
