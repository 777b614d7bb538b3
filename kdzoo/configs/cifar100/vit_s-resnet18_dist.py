# CIFAR-100 (224x224): ViT-S -> ResNet-18, DIST.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   DIST 76.49 | student from scratch 74.01 | teacher 92.04
_base_ = ['./_base_/pairs/vit_s-resnet18.py', '../_base_/methods/dist.py']
model = {{_base_.method}}
