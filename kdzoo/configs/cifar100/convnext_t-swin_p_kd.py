# CIFAR-100 (224x224): ConvNeXt-T -> Swin-P, KD.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   KD 76.44 | student from scratch 72.63 | teacher 88.41
_base_ = ['./_base_/pairs/convnext_t-swin_p.py', '../_base_/methods/kd.py']
model = {{_base_.method}}
