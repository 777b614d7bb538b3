# ORL quick start: trains the small face Swin teacher (configs/face/_base_/orl.py) with ArcFace on the 28
# training identities, 8 epochs like the students. The distillation quick starts (orl_kd.py, orl_fitnet.py,
# orl_urfm_apt.py) load its weights from kdzoo/data/teachers/orl_swin_teacher.safetensors, which ships with kdzoo
# and was made by (kdzoo/data/teachers/README.md)
#   python tools/train.py configs/face/orl_teacher.py
#   python tools/export.py configs/face/orl_teacher.py work_dirs/orl_teacher/epoch_8.pth --out-dir DIR --no-onnx
# and stored in float16; they run this first when that file is missing.
_base_ = ['../_base_/default_runtime.py', './_base_/orl.py']
model = dict(type='DistillModel', student={{_base_.orl_teacher}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
# 17 steps an epoch: a log line every 5 (the default 10 would leave most of an epoch silent)
default_hooks = dict(logger=dict(interval=5))
