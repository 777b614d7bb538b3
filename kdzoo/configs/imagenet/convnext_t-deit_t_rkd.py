# ImageNet-1K: ConvNeXt-T -> DeiT-T, RKD.
# Top-1 (%) reported by FOFA Table 2 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   RKD 71.47 | student from scratch 72.17 | teacher 82.05
_base_ = ['./_base_/pairs/convnext_t-deit_t.py', '../_base_/methods/rkd.py']
model = {{_base_.method}}
