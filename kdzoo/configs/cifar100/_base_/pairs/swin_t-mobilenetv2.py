# Pair: Swin-T (teacher) -> MobileNetV2 (student), CIFAR-100 at 224x224, CNN-student recipe (cifar100_cnn_300e).
# Teacher: a CIFAR-100 fine-tune of timm swin_tiny_patch4_window7_224 (100 classes), the checkpoint released by the
# OFA-KD authors (the teacher of FOFA Table 1). Expected at checkpoints/cifar100/swin_t.pth, a placeholder path: put
# the file there or set model.teachers.swin_t.checkpoint=PATH (see configs/README.md).
# Method fragments (../methods/*.py) add the distillers; the student-only config removes the teacher.
_base_ = ['../../../_base_/schedules/cifar100_cnn_300e.py']
model = dict(
    type='DistillModel',
    student=dict(
        type='TimmClassifier', model_name='mobilenetv2_100', num_classes=100,
        # Stages of the OFA/FOFA code (docs/methods/conventions.md, 'Stages of heterogeneous pairs'): blocks idx 2, 5, 12 and, as stage 4, conv_head + bn2
        # (1280 x 7 x 7) rather than timm's last block (320 x 7 x 7).
        stages=['blocks.1', 'blocks.2', 'blocks.4', 'bn2']),
    teachers=dict(swin_t=dict(
        model=dict(type='TimmClassifier', model_name='swin_tiny_patch4_window7_224', num_classes=100),
        checkpoint='checkpoints/cifar100/swin_t.pth')),
    input_size=(3, 224, 224))
