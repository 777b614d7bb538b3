# ImageNet-1K: Swin-T -> ResNet-18, FOFA.
# Top-1 (%) reported by FOFA Table 2 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   FOFA 71.54 | student from scratch 69.75 | teacher 81.38
_base_ = ['./_base_/pairs/swin_t-resnet18.py', '../_base_/methods/fofa_imagenet.py']
model = {{_base_.method}}
