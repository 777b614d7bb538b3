# ImageNet-1K: Swin-T -> ResNet-18, KD.
# Top-1 (%) reported by FOFA Table 2 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   KD 71.14 | student from scratch 69.75 | teacher 81.38
_base_ = ['./_base_/pairs/swin_t-resnet18.py', '../_base_/methods/kd.py']
model = {{_base_.method}}
