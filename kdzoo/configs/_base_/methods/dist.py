# DIST (Huang et al. 2022; docs/methods/dist.md) as in the heterogeneous benchmarks of the OFA code:
# beta 1 (inter-class), gamma 1 (intra-class), tau 1; CE weight 1. Pair-agnostic (`model = {{_base_.method}}`).
method = dict(distillers=[dict(type='dist', beta=1.0, gamma=1.0, temperature=1.0, loss_weight=1.0)])
