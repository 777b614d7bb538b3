# OFA-KD (Hao et al. 2023; docs/methods/ofa.md), CIFAR-100 setting of the OFA code: exit branches on student
# stages 1-4, eps 1.0 for every exit and the final logits, T 1, weights 1 (CE, OFA on the final logits, branches).
# ImageNet-1K uses eps 1.5 (ofa_imagenet.py).
# Pair-agnostic (merged by `model = {{_base_.method}}`).
method = dict(distillers=[dict(type='ofa', stages=(1, 2, 3, 4), eps=1.0, temperature=1.0, loss_weight=1.0)])
# The OFA code treats Swin students as token models (ViT-block branches after patch merging); kdzoo reads Swin
# stages as maps, so pairs with a Swin student pick this variant (`model = {{_base_.method_swin_student}}`).
method_swin_student = dict(distillers=[dict(type='ofa', stages=(1, 2, 3, 4), eps=1.0, temperature=1.0,
                                            loss_weight=1.0, student_family='token')])
