# Models of the MNIST benchmark pairs (32x32 grey digits, 10 classes). The CNN and RedNet teachers are the quick
# start's (same model dicts and checkpoints, so a quick-start run and a benchmark share them); the ViT teacher has
# the quick start's architecture but a longer schedule (teachers/vit.py); the MLP-Mixer teacher is the benchmark's.
# Teachers train on all 8,000 training digits, students on 1,000.
input_size = (1, 32, 32)
vit_teacher = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=32, patch_size=4,
                   in_chans=1, num_classes=10, embed_dim=96, depth=6, num_heads=3)
mixer_teacher = dict(type='TimmClassifier', model_name='timm.models.mlp_mixer.MlpMixer', img_size=32, patch_size=4, in_chans=1,
                     num_classes=10, embed_dim=128, num_blocks=6)
cnn_teacher = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
                   channels=(32, 64, 128, 256), stem_width=16)
rednet_teacher = dict(type='rednet26', in_chans=1, num_classes=10)
cnn_student = dict(type='TimmClassifier', model_name='resnet10t', in_chans=1, num_classes=10,
                   channels=(16, 32, 64, 128), stem_width=16)
vit_student = dict(type='TimmClassifier', model_name='vit_tiny_patch16_224', img_size=32, patch_size=4,
                   in_chans=1, num_classes=10, embed_dim=64, depth=4, num_heads=2)
checkpoints = dict(vit='work_dirs/benchmarks/teachers/vit.safetensors',
                   mixer='work_dirs/benchmarks/teachers/mixer.safetensors',
                   cnn='work_dirs/quickstart/cnn_teacher.safetensors',
                   rednet='work_dirs/quickstart/rednet_teacher.safetensors')
teacher_config_files = dict(vit='configs/benchmarks/mnist/teachers/vit.py',
                            mixer='configs/benchmarks/mnist/teachers/mixer.py',
                            cnn='configs/quickstart/cnn_teacher.py',
                            rednet='configs/quickstart/rednet_teacher.py')
