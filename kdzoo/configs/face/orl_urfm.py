# ORL ablation of configs/face/orl_urfm_apt.py: URFM alone, with the teacher frozen as it is (no APT prompts) —
# the paper's "frozen teacher" row (docs/methods/urfm.md, 'Paper numbers'). Also the reference for APT's step-time cost:
#   python tools/speed.py configs/face/orl_kd.py configs/face/orl_urfm.py configs/face/orl_urfm_apt.py --batch-size 16
_base_ = ['./_base_/orl_distill.py']
model = dict(distillers=[dict(type='urfm', center_grid=7, facial_pe='euclidean+saliency')])
