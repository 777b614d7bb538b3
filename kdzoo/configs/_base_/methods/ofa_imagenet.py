# OFA-KD (Hao et al. 2023; docs/methods/ofa.md), ImageNet setting of the OFA code (README command): exit
# branches on student stages 1-4, eps 1.5 (CIFAR-100: 1.0, ofa.py) for every exit and the final logits, T 1,
# weights 1.
# Pair-agnostic (merged by `model = {{_base_.method}}`).
method = dict(distillers=[dict(type='ofa', stages=(1, 2, 3, 4), eps=1.5, temperature=1.0, loss_weight=1.0)])
# For a Swin student (a token model in the OFA code; kdzoo reads Swin stages as maps).
method_swin_student = dict(distillers=[dict(type='ofa', stages=(1, 2, 3, 4), eps=1.5, temperature=1.0,
                                            loss_weight=1.0, student_family='token')])
