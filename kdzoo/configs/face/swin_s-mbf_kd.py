# MS1MV2: Swin-S face teacher -> MobileFaceNet student, KD (Hinton et al. 2015) on the margin heads' identity
# logits: each model's normalised embedding against its own ArcFace head's normalised centres, times s = 64,
# without the margin (face_kd, kdzoo/face/methods/face_kd/distiller.py). A softmax over the 512 embedding dimensions would
# have no meaning, so this is the face form of KD; it needs the teacher's ArcFace head in its checkpoint
# (configs/face/_base_/swin_s-mbf.py). T = 4 (mdistiller's CIFAR-100 KD temperature, docs/methods/kd.md; no face
# KD temperature is documented), KD and ArcFace weights 1.
# Numbers reported for KD with an IResNet-50 teacher in the EKD setting (docs/face_reference.md §7; the
# URFM + APT paper's Swin-S -> MobileFaceNet KD numbers were not readable, docs/methods/urfm.md, 'Paper numbers'):
#   IJB-C TPR@FPR=1e-4 88.37 | IJB-B 86.08 | MegaFace 90.40 | CFP-FP 91.71 | CPLFW 87.85 | AgeDB 95.93
#   student without KD: 89.13 | 87.07 | 90.91 | 91.66 | 87.93 | 95.82
_base_ = ['./_base_/swin_s-mbf.py']
model = dict(distillers=[dict(type='face_kd', temperature=4.0)])
