# Pair: Swin-T (teacher) -> ResMLP-S12 (student), ImageNet-1K, ViT/MLP-student recipe (imagenet_vit_300e).
# Teacher: timm's ImageNet weights swin_tiny_patch4_window7_224.ms_in1k (the teacher of FOFA Table 2). Expected at
# checkpoints/imagenet/swin_t.pth, a placeholder path: put the file there or set model.teachers.swin_t.checkpoint=PATH
# (see configs/README.md).
# Method fragments (../methods/*.py) add the distillers; the student-only config removes the teacher.
_base_ = ['../../../_base_/schedules/imagenet_vit_300e.py']
model = dict(
    type='DistillModel',
    student=dict(type='TimmClassifier', model_name='resmlp_12_224', num_classes=1000),
    teachers=dict(swin_t=dict(
        model=dict(type='TimmClassifier', model_name='swin_tiny_patch4_window7_224', num_classes=1000),
        checkpoint='checkpoints/imagenet/swin_t.pth')),
    input_size=(3, 224, 224))
