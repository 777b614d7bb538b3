# Pair: ConvNeXt-T (teacher) -> ResMLP-S12 (student), CIFAR-100 at 224x224, ViT/MLP-student recipe
# (cifar100_vit_300e).
# Teacher: a CIFAR-100 fine-tune of timm convnext_tiny (100 classes), the checkpoint released by the OFA-KD authors
# (the teacher of FOFA Table 1). Expected at checkpoints/cifar100/convnext_t.pth, a placeholder path: put the file
# there or set model.teachers.convnext_t.checkpoint=PATH (see configs/README.md).
# Method fragments (../methods/*.py) add the distillers; the student-only config removes the teacher.
_base_ = ['../../../_base_/schedules/cifar100_vit_300e.py']
model = dict(
    type='DistillModel',
    student=dict(type='TimmClassifier', model_name='resmlp_12_224', num_classes=100),
    teachers=dict(convnext_t=dict(
        model=dict(type='TimmClassifier', model_name='convnext_tiny', num_classes=100),
        checkpoint='checkpoints/cifar100/convnext_t.pth')),
    input_size=(3, 224, 224))
