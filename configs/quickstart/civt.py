# CivT / Co-advise (Ren et al. 2022, docs/methods/civt.md): a CNN teacher (ResNet-10-T) and an involution teacher
# (RedNet-26) -> a small class-token ViT student with CONV and INV distillation tokens, on embedded MNIST.
# Eq. 5 with the paper's defaults: CE on the CLS head, KL at T = 1 from each teacher to its own token's head,
# all weights 1; learnable tokens and CLS-head inference (docs/methods/civt.md). Both teachers are trained first
# by tools/train.py when their checkpoints do not exist yet (cnn_teacher.py, rednet_teacher.py; the model
# dicts below must match theirs). Variants: adapters=[dict(type='civt_tokens', stem='dual',
# inference='average')] for the official code's stems and averaged heads.
_base_ = ['../_base_/datasets/mnist.py', '../_base_/schedules/quickstart.py', '../_base_/default_runtime.py',
          './_models.py']
civt_student = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=32, patch_size=4,
                    in_chans=1, num_classes=10, embed_dim=64, depth=4, num_heads=2)
cnn_teacher = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
                   channels=(32, 64, 128, 256), stem_width=16)
rednet_teacher = dict(type='rednet26', in_chans=1, num_classes=10)
model = dict(
    type='DistillModel',
    student=civt_student,
    teachers=dict(cnn=dict(model=cnn_teacher, checkpoint='work_dirs/quickstart/cnn_teacher.safetensors'),
                  rednet=dict(model=rednet_teacher, checkpoint='work_dirs/quickstart/rednet_teacher.safetensors')),
    adapters=[dict(type='civt_tokens')],
    distillers=[dict(type='civt', conv_teacher='cnn', inv_teacher='rednet')],
    input_size={{_base_.input_size}},
    data_preprocessor={{_base_.data_preprocessor}},
)
teacher_configs = dict(cnn='configs/quickstart/cnn_teacher.py', rednet='configs/quickstart/rednet_teacher.py')
custom_hooks = [dict(type='TeacherEvalHook')]
