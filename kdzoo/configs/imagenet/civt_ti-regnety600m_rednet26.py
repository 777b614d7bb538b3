# ImageNet-1K: CivT-Ti (DeiT-Ti geometry + CONV/INV distillation tokens) taught by RegNetY-600MF and RedNet-26
# (Ren et al., CVPR 2022; docs/methods/civt.md). Top-1 (%) reported by the paper (Table 2; not reproduced by kdzoo):
#   CivT-Ti 74.9 | DeiT-Ti 72.2 | DeiT-Ti-KD 74.5. Teachers as used by CivT (Table 1): RegNetY-600M 73.5,
#   RedNet-26 73.0 (record your teachers' accuracy: TeacherEvalHook logs it).
# Teachers: timm's regnety_006 weights, expected at checkpoints/imagenet/regnety_006.pth, and RedNet-26 weights,
# expected at checkpoints/imagenet/rednet26.pth (the involution repository's files need their keys renamed with
# kdzoo.models.involution.checkpoint_filter_fn first). Both paths are placeholders: set
# model.teachers.cnn.checkpoint / model.teachers.rednet.checkpoint.
# Defaults of docs/methods/civt.md: learnable tokens, CLS-head inference; `civt_tokens` with stem='dual' and
# inference='average' is the official code's variant.
_base_ = ['./_base_/civt.py']
model = dict(
    type='DistillModel',
    student=dict(type='TimmClassifier', model_name='deit_tiny_patch16_224', num_classes=1000, drop_path_rate=0.1),
    teachers=dict(
        cnn=dict(model=dict(type='TimmClassifier', model_name='regnety_006', num_classes=1000),
                 checkpoint='checkpoints/imagenet/regnety_006.pth'),
        rednet=dict(model=dict(type='rednet26', num_classes=1000), checkpoint='checkpoints/imagenet/rednet26.pth')),
    adapters=[dict(type='civt_tokens')],
    distillers=[dict(type='civt', conv_teacher='cnn', inv_teacher='rednet')],
    input_size=(3, 224, 224))
