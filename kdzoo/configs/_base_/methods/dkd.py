# DKD (Zhao et al. 2022; docs/methods/dkd.md) as in the heterogeneous benchmarks of the OFA / FOFA code:
# alpha 1, beta 2, T 1, weight 1, no warm-up; CE weight 1. Pair-agnostic (merged by `model = {{_base_.method}}`).
method = dict(distillers=[dict(type='dkd', alpha=1.0, beta=2.0, temperature=1.0, loss_weight=1.0)])
