# Base of the quick-start distillation configs: ViT teacher -> CNN student on embedded MNIST.
# Method configs add `model.distillers`. The teacher is trained first by tools/train.py when its checkpoint
# does not exist yet (see `teacher_configs`).
_base_ = ['../_base_/datasets/mnist.py', '../_base_/schedules/quickstart.py', '../_base_/default_runtime.py',
          './_models.py']
model = dict(
    type='DistillModel',
    student={{_base_.cnn_student}},
    teachers=dict(vit=dict(model={{_base_.vit_teacher}}, checkpoint={{_base_.checkpoints.vit}})),
    input_size={{_base_.input_size}},
    data_preprocessor={{_base_.data_preprocessor}},
)
teacher_configs = dict(vit={{_base_.teacher_config_files.vit}})
custom_hooks = [dict(type='TeacherEvalHook')]
