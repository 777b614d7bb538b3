# ORL quick start: FitNet (docs/methods/fitnet.md): the student's four stage maps (56/28/14/7) regress the small face
# Swin's four stages read as tokens (one patch-embedding conv each), MSE per stage, weight 1, plus ArcFace.
#   python tools/train.py configs/face/orl_fitnet.py
_base_ = ['./_base_/orl_distill.py']
model = dict(distillers=[dict(type='fitnet', teacher_kind='tokens')])
