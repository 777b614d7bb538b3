# resnet-vit: CivT / Co-advise (docs/methods/civt.md): the ResNet-10-T teacher and a RedNet-26 involution teacher teach
# the ViT student through CONV and INV distillation tokens (KL at T = 1 to each token's head, CE on the CLS head,
# all weights 1; CLS-head inference). Both teachers are trained first when their checkpoints do not exist yet.
_base_ = ['./_pair.py']
model = dict(teachers=dict(rednet=dict(model={{_base_.rednet_teacher}}, checkpoint={{_base_.checkpoints.rednet}})),
             adapters=[dict(type='civt_tokens')],
             distillers=[dict(type='civt', conv_teacher='cnn', inv_teacher='rednet')])
teacher_configs = dict(rednet={{_base_.teacher_config_files.rednet}})
