# Base of the quick-start distillation configs: ViT teacher -> CNN student (./_student.py) on embedded MNIST.
# Method configs add `model.distillers`. The teacher is trained first by tools/train.py when its checkpoint
# does not exist yet (see `teacher_configs`).
_base_ = ['./_student.py']
model = dict(teachers=dict(vit=dict(model={{_base_.vit_teacher}}, checkpoint={{_base_.checkpoints.vit}})))
teacher_configs = dict(vit={{_base_.teacher_config_files.vit}})
custom_hooks = [dict(type='TeacherEvalHook')]
