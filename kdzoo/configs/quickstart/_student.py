# Base of the quick-start CNN student, distilled or alone: the first 1,000 of the 8,000 training digits for 8 epochs
# (15 steps each). The ViT teacher saw all 8,000 (and random shifts), so it knows more than this student can learn
# alone: the setting where distillation helps. It is the student setting of the MNIST benchmark's vit-resnet pair
# (configs/benchmarks/mnist/_base_/limited_student.py; docs/benchmarks.md measures it over 3 seeds).
_base_ = ['./_mnist.py']
train_dataloader = dict(dataset=dict(num_items=1000))
max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# A 20-step warm-up, then the quick start's cosine (it ends at train_cfg.max_epochs).
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20), _base_.param_scheduler[1]]
default_hooks = dict(logger=dict(interval=5))
model = dict(student={{_base_.cnn_student}})
