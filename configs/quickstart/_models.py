# The quick-start pair on 32x32 grey digits: a small ViT teacher (6 blocks, width 96, patch 4 -> 8x8 grid)
# and a small CNN student (ResNet-10-T with widths 16-128). Shared by every quick-start config.
vit_teacher = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=32, patch_size=4,
                   in_chans=1, num_classes=10, embed_dim=96, depth=6, num_heads=3)
cnn_student = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
                   channels=(16, 32, 64, 128), stem_width=16)
input_size = (1, 32, 32)
teacher_checkpoint = 'work_dirs/quickstart/vit_teacher.safetensors'
