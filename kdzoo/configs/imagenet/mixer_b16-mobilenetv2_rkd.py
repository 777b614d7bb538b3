# ImageNet-1K: Mixer-B/16 -> MobileNetV2, RKD.
# Top-1 (%) reported by FOFA Table 2 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   RKD 69.86 | student from scratch 68.87 | teacher 76.62
_base_ = ['./_base_/pairs/mixer_b16-mobilenetv2.py', '../_base_/methods/rkd.py']
model = {{_base_.method}}
