# Models of the MNIST benchmark pairs (32x32 grey digits, 10 classes): the quick start's models
# (configs/quickstart/_models.py) plus the benchmark's MLP-Mixer teacher. The CNN and RedNet teachers are the quick
# start's (same model dicts and checkpoints, so a quick-start run and a benchmark share them), the ViT teacher too.
# Teachers train on all 8,000 training digits, students on 1,000.
_base_ = ['../../../quickstart/_models.py']
mixer_teacher = dict(type='TimmClassifier', model_name='timm.models.mlp_mixer.MlpMixer', img_size=32, patch_size=4, in_chans=1,
                     num_classes=10, embed_dim=128, num_blocks=6)
# Merged into the quick start's entries: vit, cnn and rednet stay the quick start's (the ViT teacher ships with kdzoo).
checkpoints = dict(mixer='work_dirs/benchmarks/teachers/mixer.safetensors')
teacher_config_files = dict(mixer='configs/benchmarks/mnist/teachers/mixer.py')
