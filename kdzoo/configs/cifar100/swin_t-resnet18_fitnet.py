# CIFAR-100 (224x224): Swin-T -> ResNet-18, FitNet.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   FitNet 78.87 | student from scratch 74.01 | teacher 89.26
_base_ = ['./_base_/pairs/swin_t-resnet18.py', '../_base_/methods/fitnet.py']
# Swin teacher: the fragment's token-aligner variant (PAT reads Swin as tokens).
model = {{_base_.method_swin_teacher}}
