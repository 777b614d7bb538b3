# ImageNet-1K: DeiT-T trained alone, the student reference of the ConvNeXt-T -> DeiT-T pair.
# Top-1 (%) reported by FOFA Table 2 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   student from scratch 72.17 | teacher 82.05
_base_ = ['./_base_/pairs/convnext_t-deit_t.py', '../_base_/methods/student.py']
model = {{_base_.method}}
