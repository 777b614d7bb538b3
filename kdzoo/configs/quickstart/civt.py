# CivT / Co-advise (Ren et al. 2022, docs/methods/civt.md): a CNN teacher (ResNet-10-T) and an involution teacher
# (RedNet-26) -> a small class-token ViT student with CONV and INV distillation tokens, on embedded MNIST.
# Eq. 5 with the paper's defaults: CE on the CLS head, KL at T = 1 from each teacher to its own token's head,
# all weights 1; learnable tokens and CLS-head inference (docs/methods/civt.md). Both teachers are trained first
# by tools/train.py when their checkpoints do not exist yet (cnn_teacher.py, rednet_teacher.py; all three
# model dicts come from _models.py). Variants: adapters=[dict(type='civt_tokens', stem='dual',
# inference='average')] for the official code's stems and averaged heads.
_base_ = ['./_mnist.py']
model = dict(
    student={{_base_.vit_student}},
    teachers=dict(cnn=dict(model={{_base_.cnn_teacher}}, checkpoint={{_base_.checkpoints.cnn}}),
                  rednet=dict(model={{_base_.rednet_teacher}}, checkpoint={{_base_.checkpoints.rednet}})),
    adapters=[dict(type='civt_tokens')],
    distillers=[dict(type='civt', conv_teacher='cnn', inv_teacher='rednet')],
)
teacher_configs = dict(cnn={{_base_.teacher_config_files.cnn}}, rednet={{_base_.teacher_config_files.rednet}})
custom_hooks = [dict(type='TeacherEvalHook')]
