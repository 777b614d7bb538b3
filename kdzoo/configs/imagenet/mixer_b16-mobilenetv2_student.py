# ImageNet-1K: MobileNetV2 trained alone, the student reference of the Mixer-B/16 -> MobileNetV2 pair.
# Top-1 (%) reported by FOFA Table 2 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   student from scratch 68.87 | teacher 76.62
_base_ = ['./_base_/pairs/mixer_b16-mobilenetv2.py', '../_base_/methods/student.py']
model = {{_base_.method}}
