# Step 2 of docs/own_data.md: distil the fine-tuned ViT teacher into the CNN student with KD (Hinton et al.
# 2015, T = 4, KD and cross-entropy weights 1). When teacher_checkpoint does not exist, tools/train.py first
# trains the teacher with vit_teacher.py (the log says so; --teacher-cfg-options changes that run) and writes
# it there. TeacherEvalHook scores the teacher on the validation folder first; the log ends with a
# `kdzoo summary:` line holding the teacher's and the student's top-1.
#   OWN_DATA_ROOT=/data/flowers OWN_NUM_CLASSES=5 python tools/train.py configs/own_data/kd.py
# Other methods: replace the distiller (docs/methods.md), e.g. model.distillers=[dict(type='dkd')].
_base_ = ['./_models.py', './_schedule.py']
model = dict(
    type='DistillModel',
    student={{_base_.cnn_student}},
    teachers=dict(vit=dict(model={{_base_.vit_teacher}}, checkpoint={{_base_.teacher_checkpoint}})),
    distillers=[dict(type='kd', temperature=4.0)],
    input_size={{_base_.input_size}},
    data_preprocessor={{_base_.data_preprocessor}},
)
teacher_configs = dict(vit='configs/own_data/vit_teacher.py')
custom_hooks = [dict(type='TeacherEvalHook')]
