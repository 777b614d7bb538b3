# MS1MV2: Swin-S face teacher -> MobileFaceNet student, FitNet with the cross-architecture aligners of
# docs/methods/fitnet.md: MobileFaceNet's four stage maps (56/28/14/7, the last one the 512x7x7 map before GDC)
# regress the face Swin's four stages (same grids), the Swin read as tokens as PAT does (a patch-embedding conv per
# stage), MSE per stage, weight 1, no KD term (docs/methods/fitnet.md), plus ArcFace (s=64, m=0.5).
# Numbers reported for FitNet with an IResNet-50 teacher in the EKD setting (docs/face_reference.md §7; the
# URFM + APT paper quotes CFP-FP 91.3 for FitNet, docs/methods/urfm.md, 'Paper numbers'):
#   IJB-C TPR@FPR=1e-4 87.76 | IJB-B 86.35 | MegaFace 91.16 | CFP-FP 91.30 | CPLFW 88.30 | AgeDB 96.18
#   student without KD: 89.13 | 87.07 | 90.91 | 91.66 | 87.93 | 95.82
_base_ = ['./_base_/swin_s-mbf.py']
model = dict(distillers=[dict(type='fitnet', teacher_kind='tokens')])
