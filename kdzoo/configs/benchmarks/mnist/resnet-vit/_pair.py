# MNIST benchmark pair resnet-vit: ResNet-10-T teacher (widths 32-256) -> ViT student (4 blocks, width 64).
# Every method config of this folder distils this pair in the limited-data setting of
# ../_base_/limited_student.py; student.py trains the student alone. The teacher is trained first (on all 8,000
# training digits) when its checkpoint does not exist yet. A ViT learns far more slowly than a CNN: after the
# CNN students' 8 epochs (120 steps) it is still near chance (26 % top-1), so this pair trains for 30 epochs.
_base_ = ['../_base_/limited_student.py']
max_epochs = 30
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
model = dict(
    type='DistillModel',
    student={{_base_.vit_student}},
    teachers=dict(cnn=dict(model={{_base_.cnn_teacher}}, checkpoint={{_base_.checkpoints.cnn}})),
    input_size={{_base_.input_size}},
    data_preprocessor={{_base_.data_preprocessor}},
)
teacher_configs = dict(cnn={{_base_.teacher_config_files.cnn}})
