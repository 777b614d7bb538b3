# Trains the CNN teacher of the CivT quick start (ResNet-10-T, widths 32-256) on the embedded MNIST split.
# configs/quickstart/civt.py runs this first when work_dirs/quickstart/cnn_teacher.safetensors does not exist.
_base_ = ['../_base_/datasets/mnist.py', '../_base_/schedules/quickstart.py', '../_base_/default_runtime.py',
          './_models.py']
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
cnn_teacher = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
                   channels=(32, 64, 128, 256), stem_width=16)
model = dict(type='DistillModel', student=cnn_teacher, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
