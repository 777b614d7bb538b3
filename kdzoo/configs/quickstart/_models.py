# The MNIST models (32x32 grey digits, 10 classes), declared once for every quick-start config and the MNIST
# benchmark (configs/benchmarks/mnist/_base_/models.py adds its MLP-Mixer teacher): a teacher's training config
# and the distillation configs that load its checkpoint take the same dict from here, so they cannot drift apart.
#   vit_teacher     small ViT (6 blocks, width 96, patch 4 -> 8x8 grid): the teacher of the quick start
#   cnn_teacher     ResNet-10-T with widths 32-256: the CNN teacher of CivT
#   rednet_teacher  RedNet-26 (involution, docs/methods/civt.md): the INV teacher of CivT
#   cnn_student     ResNet-10-T with widths 16-128: the student of the quick start
#   vit_student     small class-token ViT (4 blocks, width 64): the student of CivT
input_size = (1, 32, 32)
vit_teacher = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=32, patch_size=4,
                   in_chans=1, num_classes=10, embed_dim=96, depth=6, num_heads=3)
cnn_teacher = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
                   channels=(32, 64, 128, 256), stem_width=16)
rednet_teacher = dict(type='rednet26', in_chans=1, num_classes=10)
cnn_student = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
                   channels=(16, 32, 64, 128), stem_width=16)
vit_student = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=32, patch_size=4,
                   in_chans=1, num_classes=10, embed_dim=64, depth=4, num_heads=2)
# Each teacher's training config, and the checkpoint that tools/train.py writes from it when the file does not exist
# yet (a distillation config names both: `teacher_configs` and `model.teachers.<name>.checkpoint`).
teacher_config_files = dict(vit='configs/quickstart/vit_teacher.py', cnn='configs/quickstart/cnn_teacher.py',
                            rednet='configs/quickstart/rednet_teacher.py')
checkpoints = dict(vit='kdzoo/data/teachers/mnist_vit_teacher.safetensors',  # shipped with kdzoo
                   cnn='work_dirs/quickstart/cnn_teacher.safetensors',
                   rednet='work_dirs/quickstart/rednet_teacher.safetensors')
