# CIFAR-100 (224x224): Swin-T -> MobileNetV2, FitNet.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   FitNet 74.28 | student from scratch 73.68 | teacher 89.26
_base_ = ['./_base_/pairs/swin_t-mobilenetv2.py', '../_base_/methods/fitnet.py']
# Swin teacher: the fragment's token-aligner variant (PAT reads Swin as tokens).
model = {{_base_.method_swin_teacher}}
