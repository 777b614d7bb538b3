# Step 1 of docs/own_data.md: fine-tune the timm ViT teacher on your classes (a DistillModel with a student and no
# teachers is plain supervised training). kd.py runs this first when its teacher_checkpoint does not exist, and
# writes the trained network there as safetensors; run it yourself to look at the teacher first:
#   OWN_DATA_ROOT=/data/flowers OWN_NUM_CLASSES=5 python tools/train.py configs/own_data/vit_teacher.py
# The classifier of timm's weights (1000 ImageNet classes) is replaced by a new one for num_classes.
_base_ = ['./_models.py', './_schedule.py']
model = dict(type='DistillModel', student={{_base_.pretrained_vit_teacher}},
             input_size={{_base_.input_size}}, data_preprocessor={{_base_.data_preprocessor}})
