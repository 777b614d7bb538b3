# Trains the CNN teacher of the CivT quick start (ResNet-10-T, widths 32-256) on the embedded MNIST split.
# configs/quickstart/civt.py runs this first when work_dirs/quickstart/cnn_teacher.safetensors does not exist.
_base_ = ['../_base_/datasets/mnist.py', '../_base_/schedules/quickstart.py', '../_base_/default_runtime.py',
          './_models.py']
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
model = dict(type='DistillModel', student={{_base_.cnn_teacher}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
