# ImageNet-1K: Swin-T -> ResMLP-S12, DIST.
# Top-1 (%) reported by FOFA Table 2 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   DIST 77.25 | student from scratch 76.65 | teacher 81.38
_base_ = ['./_base_/pairs/swin_t-resmlp_s12.py', '../_base_/methods/dist.py']
model = {{_base_.method}}
