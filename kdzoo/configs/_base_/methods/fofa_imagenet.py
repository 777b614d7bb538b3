# FOFA / PAT on ImageNet-1K (docs/methods/fofa.md): as on CIFAR-100 (fofa.py) but with M = 144 RAA queries.
# Pair-agnostic (merged by `model = {{_base_.method}}`).
method = dict(distillers=[dict(type='fofa', num_queries=144, dim=512, temperature=1.0)],
              adapters=[dict(type='afp', target='teacher')])
