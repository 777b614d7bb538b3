# Trains the quick-start ViT teacher on the embedded MNIST split (no distillation: a DistillModel with a
# student and no teachers is plain supervised training). Distillation configs run this first when
# work_dirs/quickstart/vit_teacher.safetensors does not exist yet.
_base_ = ['../_base_/datasets/mnist.py', '../_base_/schedules/quickstart.py', '../_base_/default_runtime.py',
          './_models.py']
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
model = dict(type='DistillModel', student={{_base_.vit_teacher}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
