# ORL quick start: trains the small face Swin teacher (configs/face/_base_/orl.py) with ArcFace on the 28
# training identities, 8 epochs like the students. The distillation quick starts (orl_kd.py, orl_fitnet.py,
# orl_urfm_apt.py) run this first when work_dirs/face/orl_teacher.safetensors does not exist yet, and load its
# weights from there.
#   python tools/train.py configs/face/orl_teacher.py
_base_ = ['../_base_/default_runtime.py', './_base_/orl.py']
model = dict(type='DistillModel', student={{_base_.orl_teacher}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
# 17 steps an epoch: a log line every 5 (the default 10 would leave most of an epoch silent)
default_hooks = dict(logger=dict(interval=5))
