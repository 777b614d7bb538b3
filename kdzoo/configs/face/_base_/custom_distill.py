# Base of the custom face distillation configs: the face Swin teacher -> the MobileFaceNet student on your faces
# (configs/face/_base_/custom.py). tools/train.py trains the teacher first with custom_teacher.py when
# teacher_checkpoint does not exist yet (the log says so; --teacher-cfg-options changes that run), then distils;
# TeacherEvalHook scores the teacher on the verification sets first. Method configs add the distillers.
_base_ = ['./custom.py']
model = dict(
    type='DistillModel',
    student={{_base_.face_student}},
    teachers=dict(swin=dict(model={{_base_.face_teacher}}, checkpoint={{_base_.teacher_checkpoint}})),
    input_size={{_base_.input_size}},
    data_preprocessor={{_base_.data_preprocessor}},
)
teacher_configs = dict(swin='configs/face/custom_teacher.py')
custom_hooks = [dict(type='TeacherEvalHook')]
