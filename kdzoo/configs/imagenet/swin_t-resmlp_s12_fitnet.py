# ImageNet-1K: Swin-T -> ResMLP-S12, FitNet.
# Top-1 (%) reported by FOFA Table 2 (docs/methods/fofa.md, 'Paper numbers'); the paper's numbers, not reproduced by kdzoo:
#   FitNet 76.48 | student from scratch 76.65 | teacher 81.38
_base_ = ['./_base_/pairs/swin_t-resmlp_s12.py', '../_base_/methods/fitnet.py']
# Swin teacher: the fragment's token-aligner variant (PAT reads Swin as tokens).
model = {{_base_.method_swin_teacher}}
