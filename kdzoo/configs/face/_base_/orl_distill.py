# Base of the ORL distillation quick starts: the small face Swin teacher -> the small MobileFaceNet student
# (configs/face/_base_/orl.py). The teacher's weights ship with kdzoo (kdzoo/data/teachers/); when that file is
# missing, tools/train.py trains it first with configs/face/orl_teacher.py (the log says so), then distils, evaluating the
# teacher (TeacherEvalHook) and the student on the 10 held-out identities. Method configs add the distillers.
_base_ = ['../../_base_/default_runtime.py', './orl.py']
model = dict(
    type='DistillModel',
    student={{_base_.orl_student}},
    teachers=dict(swin=dict(model={{_base_.orl_teacher}}, checkpoint={{_base_.teacher_checkpoint}})),
    input_size={{_base_.input_size}},
    data_preprocessor={{_base_.data_preprocessor}},
)
teacher_configs = dict(swin='configs/face/orl_teacher.py')
custom_hooks = [dict(type='TeacherEvalHook')]
# 17 steps an epoch: a log line every 5 (the default 10 would leave most of an epoch silent)
default_hooks = dict(logger=dict(interval=5))
