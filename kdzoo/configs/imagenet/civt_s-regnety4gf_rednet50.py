# ImageNet-1K: CivT-S (DeiT-S geometry + CONV/INV distillation tokens) taught by RegNetY-4GF and RedNet-50
# (Ren et al., CVPR 2022; docs/methods/civt.md). Top-1 (%) reported by the paper (Table 2; not reproduced by kdzoo):
#   CivT-S 82.0 | DeiT-S 79.8 | DeiT-S-KD 81.2. Teachers as used by CivT (Table 1): RegNetY-4GF 78.3,
#   RedNet-50 77.2. (The released script uses RedNet-101 instead, docs/methods/civt.md: set model.teachers.rednet.model.)
# Teachers: timm's regnety_040 weights at checkpoints/imagenet/regnety_040.pth and RedNet-50 weights at
# checkpoints/imagenet/rednet50.pth (placeholders; involution-repository files need
# kdzoo.models.involution.checkpoint_filter_fn).
_base_ = ['./civt_ti-regnety600m_rednet26.py']
model = dict(
    student=dict(model_name='deit_small_patch16_224'),
    teachers=dict(
        cnn=dict(model=dict(model_name='regnety_040'), checkpoint='checkpoints/imagenet/regnety_040.pth'),
        rednet=dict(model=dict(type='rednet50'), checkpoint='checkpoints/imagenet/rednet50.pth')))
