# The pair of docs/own_data.md: a timm ViT-S/16 teacher (22M parameters) fine-tuned on your classes, distilled
# into a timm ResNet-18 (11.7M). Both start from timm's ImageNet weights: downloaded from the Hugging Face hub
# when online; offline, give a local file (timm passes pretrained_cfg_overlay to its loader), e.g.
#   --cfg-options model.student.pretrained_cfg_overlay.file=/models/vit_small_patch16_224.safetensors
# Any timm name works for either model (timm.list_models('*pattern*', pretrained=True)).
_base_ = ['./_dataset.py']
# The teacher's architecture: the same dict in vit_teacher.py (trained from timm's weights) and kd.py (loaded
# from teacher_checkpoint, strictly, so pretrained weights are not fetched there).
vit_teacher = dict(type='TimmClassifier', model_name='vit_small_patch16_224', num_classes={{_base_.num_classes}})
pretrained_vit_teacher = dict(vit_teacher, pretrained=True)
cnn_student = dict(type='TimmClassifier', model_name='resnet18', pretrained=True,
                   num_classes={{_base_.num_classes}})
teacher_checkpoint = 'work_dirs/own_data/vit_teacher.safetensors'
