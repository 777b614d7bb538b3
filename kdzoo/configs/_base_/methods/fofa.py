# FOFA / PAT (docs/methods/fofa.md), CIFAR-100 setting of the PAT code (ImageNet-1K: fofa_imagenet.py): RAA
# with M = 64 queries of width 512 on student stages 1-4, the HCL feature loss against the AFP-prompted teacher
# stages, KD at T = 1 against the un-prompted teacher, the KL regulariser between the teacher's predictions with
# and without prompts; all weights 1. AFP prompts the teacher before each stage with the previous step's
# student-minus-teacher feedback (the train loader must drop the last batch: the recipes do). `target='teacher'`
# is the pair's only teacher. Pair-agnostic (merged by `model = {{_base_.method}}`).
method = dict(distillers=[dict(type='fofa', num_queries=64, dim=512, temperature=1.0)],
              adapters=[dict(type='afp', target='teacher')])
