# Pair: ConvNeXt-T (teacher) -> Swin-P (student), CIFAR-100 at 224x224, ViT/MLP-student recipe (cifar100_vit_300e).
# Teacher: a CIFAR-100 fine-tune of timm convnext_tiny (100 classes), the checkpoint released by the OFA-KD authors
# (the teacher of FOFA Table 1). Expected at checkpoints/cifar100/convnext_t.pth, a placeholder path: put the file
# there or set model.teachers.convnext_t.checkpoint=PATH (see configs/README.md).
# Method fragments (../methods/*.py) add the distillers; the student-only config removes the teacher.
_base_ = ['../../../_base_/schedules/cifar100_vit_300e.py']
model = dict(
    type='DistillModel',
    student=dict(
        # Swin-P (docs/methods/conventions.md, 'Stages of heterogeneous pairs'): patch 4, window 7, depths (2, 2, 2, 2), heads (2, 4, 8, 16), embed 48;
        # timm's Swin-T with those arguments (drop-path 0.1, timm's Swin default, as in the OFA code).
        type='TimmClassifier', model_name='swin_tiny_patch4_window7_224', num_classes=100,
        embed_dim=48, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16)),
    teachers=dict(convnext_t=dict(
        model=dict(type='TimmClassifier', model_name='convnext_tiny', num_classes=100),
        checkpoint='checkpoints/cifar100/convnext_t.pth')),
    input_size=(3, 224, 224))
# timm's eval transform of the student (crop_pct 0.9).
val_dataloader = dict(dataset=dict(pipeline={{_base_.crop_pct_0_9_test_pipeline}}))
test_dataloader = dict(dataset=dict(pipeline={{_base_.crop_pct_0_9_test_pipeline}}))
