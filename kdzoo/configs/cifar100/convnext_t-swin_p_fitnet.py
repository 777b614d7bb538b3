# CIFAR-100 (224x224): ConvNeXt-T -> Swin-P, FitNet.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   FitNet 24.06 | student from scratch 72.63 | teacher 88.41
_base_ = ['./_base_/pairs/convnext_t-swin_p.py', '../_base_/methods/fitnet.py']
# Swin student: the fragment's token-aligner variant (PAT reads Swin as tokens).
model = {{_base_.method_swin_student}}
