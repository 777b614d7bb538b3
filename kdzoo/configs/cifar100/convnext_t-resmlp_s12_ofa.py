# CIFAR-100 (224x224): ConvNeXt-T -> ResMLP-S12, OFA.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   OFA 81.22 | student from scratch 66.56 | teacher 88.41
_base_ = ['./_base_/pairs/convnext_t-resmlp_s12.py', '../_base_/methods/ofa.py']
model = {{_base_.method}}
