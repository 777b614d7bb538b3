# Trains the MLP-Mixer teacher of the mixer-resnet benchmark pair on all 8,000 training digits (6 epochs of the
# quick-start schedule). The pair's configs run this first when its checkpoint does not exist yet.
_base_ = ['../../../_base_/datasets/mnist.py', '../../../_base_/schedules/quickstart.py',
          '../../../_base_/default_runtime.py', '../_base_/models.py']
model = dict(type='DistillModel', student={{_base_.mixer_teacher}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
