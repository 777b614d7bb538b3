# What every quick-start config starts from: the embedded MNIST split, the quick-start schedule, the runtime, the
# MNIST models of _models.py, and a DistillModel at their input size. A config adds its student (a teacher's
# training config: the teacher as the student, no teachers), and, to distil, its teachers and distillers.
_base_ = ['../_base_/datasets/mnist.py', '../_base_/schedules/quickstart.py', '../_base_/default_runtime.py',
          './_models.py']
model = dict(type='DistillModel', input_size={{_base_.input_size}}, data_preprocessor={{_base_.data_preprocessor}})
