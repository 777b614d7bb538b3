# CIFAR-100 (224x224): ResNet-18 trained alone, the student reference of the Mixer-B/16 -> ResNet-18 pair.
# Top-1 (%) reported by FOFA Table 1 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   student from scratch 74.01 | teacher 87.29
_base_ = ['./_base_/pairs/mixer_b16-resnet18.py', '../_base_/methods/student.py']
model = {{_base_.method}}
