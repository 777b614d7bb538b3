# MS1MV2: the 1.19M-parameter MobileFaceNet trained alone (ArcFace s=64, m=0.5), the reference of the Swin-S ->
# MobileFaceNet configs. Standard recipe: configs/_base_/schedules/face_sgd_20e.py (fp16 with --amp).
# Numbers the papers report for this student without KD (docs/face_reference.md §7, EKD's MobileFaceNet row,
# which the URFM + APT paper quotes as its baseline; not reproduced by kdzoo):
#   IJB-C TPR@FPR=1e-4 89.13 | IJB-B 87.07 | MegaFace Id (rank-1) 90.91 | CFP-FP 91.66 | CPLFW 87.93 |
#   AgeDB 95.82; arcface_torch's wider "mbf" reaches IJB-C 93.61.
#   python tools/train.py configs/face/swin_s-mbf_student.py
_base_ = ['./_base_/swin_s-mbf.py']
model = dict(teachers=dict(_delete_=True))
custom_hooks = []
