# ImageNet-1K: Swin-T -> ResMLP-S12, FOFA.
# Top-1 (%) reported by FOFA Table 2 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   FOFA 77.59 | student from scratch 76.65 | teacher 81.38
_base_ = ['./_base_/pairs/swin_t-resmlp_s12.py', '../_base_/methods/fofa_imagenet.py']
model = {{_base_.method}}
