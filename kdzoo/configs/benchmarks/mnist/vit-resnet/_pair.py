# MNIST benchmark pair vit-resnet: ViT teacher (6 blocks, width 96) -> ResNet-10-T student (widths 16-128).
# Every method config of this folder distils this pair in the limited-data setting of
# ../_base_/limited_student.py; student.py trains the student alone. The teacher is trained first (on all 8,000
# training digits) when its checkpoint does not exist yet.
_base_ = ['../_base_/limited_student.py']
model = dict(
    type='DistillModel',
    student={{_base_.cnn_student}},
    teachers=dict(vit=dict(model={{_base_.vit_teacher}}, checkpoint={{_base_.checkpoints.vit}})),
    input_size={{_base_.input_size}},
    data_preprocessor={{_base_.data_preprocessor}},
)
teacher_configs = dict(vit={{_base_.teacher_config_files.vit}})
