# CIFAR-100 (224x224): ConvNeXt-T -> Swin-P, OFA.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   OFA 78.32 | student from scratch 72.63 | teacher 88.41
_base_ = ['./_base_/pairs/convnext_t-swin_p.py', '../_base_/methods/ofa.py']
# Swin student: the fragment's token-branch variant (the OFA code reads Swin as tokens).
model = {{_base_.method_swin_student}}
