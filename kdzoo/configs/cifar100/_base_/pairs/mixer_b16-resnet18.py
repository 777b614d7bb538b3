# Pair: Mixer-B/16 (teacher) -> ResNet-18 (student), CIFAR-100 at 224x224, CNN-student recipe (cifar100_cnn_300e).
# Teacher: a CIFAR-100 fine-tune of timm mixer_b16_224 (100 classes), the checkpoint released by the OFA-KD authors
# (the teacher of FOFA Table 1). Expected at checkpoints/cifar100/mixer_b16.pth, a placeholder path: put the file
# there or set model.teachers.mixer_b16.checkpoint=PATH (see configs/README.md).
# Method fragments (../methods/*.py) add the distillers; the student-only config removes the teacher.
_base_ = ['../../../_base_/schedules/cifar100_cnn_300e.py']
model = dict(
    type='DistillModel',
    student=dict(type='TimmClassifier', model_name='resnet18', num_classes=100),
    teachers=dict(mixer_b16=dict(
        model=dict(type='TimmClassifier', model_name='mixer_b16_224', num_classes=100),
        checkpoint='checkpoints/cifar100/mixer_b16.pth')),
    input_size=(3, 224, 224))
