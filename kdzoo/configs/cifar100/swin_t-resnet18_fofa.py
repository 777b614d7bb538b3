# CIFAR-100 (224x224): Swin-T -> ResNet-18, FOFA.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   FOFA 81.22 | student from scratch 74.01 | teacher 89.26
_base_ = ['./_base_/pairs/swin_t-resnet18.py', '../_base_/methods/fofa.py']
model = {{_base_.method}}
