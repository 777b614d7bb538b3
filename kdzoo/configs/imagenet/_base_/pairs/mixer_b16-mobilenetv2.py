# Pair: Mixer-B/16 (teacher) -> MobileNetV2 (student), ImageNet-1K, CNN-student recipe (imagenet_cnn_100e).
# Teacher: timm's ImageNet weights mixer_b16_224.goog_in21k_ft_in1k (the teacher of FOFA Table 2). Expected at
# checkpoints/imagenet/mixer_b16.pth, a placeholder path: put the file there or set
# model.teachers.mixer_b16.checkpoint=PATH (see configs/README.md).
# Method fragments (../methods/*.py) add the distillers; the student-only config removes the teacher.
_base_ = ['../../../_base_/schedules/imagenet_cnn_100e.py']
model = dict(
    type='DistillModel',
    student=dict(
        type='TimmClassifier', model_name='mobilenetv2_100', num_classes=1000,
        # Stages of the OFA/FOFA code (docs/methods/conventions.md, 'Stages of heterogeneous pairs'): blocks idx 2, 5, 12 and, as stage 4, conv_head + bn2
        # (1280 x 7 x 7) rather than timm's last block (320 x 7 x 7).
        stages=['blocks.1', 'blocks.2', 'blocks.4', 'bn2']),
    teachers=dict(mixer_b16=dict(
        model=dict(type='TimmClassifier', model_name='mixer_b16_224', num_classes=1000),
        checkpoint='checkpoints/imagenet/mixer_b16.pth')),
    input_size=(3, 224, 224))
