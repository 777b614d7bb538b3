# CIFAR-100 (224x224): ConvNeXt-T -> DeiT-T, KD.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   KD 72.99 | student from scratch 68.00 | teacher 88.41
_base_ = ['./_base_/pairs/convnext_t-deit_t.py', '../_base_/methods/kd.py']
model = {{_base_.method}}
