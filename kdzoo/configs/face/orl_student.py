# ORL quick start, the reference: the small MobileFaceNet student trained alone (ArcFace) on the 28 training
# identities, evaluated as open-set verification on the 10 held-out ones (configs/face/_base_/orl.py).
#   python tools/train.py configs/face/orl_student.py
_base_ = ['../_base_/default_runtime.py', './_base_/orl.py']
model = dict(type='DistillModel', student={{_base_.orl_student}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
# 17 steps an epoch: a log line every 5 (the default 10 would leave most of an epoch silent)
default_hooks = dict(logger=dict(interval=5))
