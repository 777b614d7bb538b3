# CIFAR-100 (224x224): Swin-T -> MobileNetV2, RKD.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   RKD 69.00 | student from scratch 73.68 | teacher 89.26
_base_ = ['./_base_/pairs/swin_t-mobilenetv2.py', '../_base_/methods/rkd.py']
model = {{_base_.method}}
