# Reference: the CNN student trained alone (same data, schedule and model as the distillation configs).
_base_ = ['../_base_/datasets/mnist.py', '../_base_/schedules/quickstart.py', '../_base_/default_runtime.py',
          './_models.py']
model = dict(type='DistillModel', student={{_base_.cnn_student}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
