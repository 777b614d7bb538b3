# KD (Hinton et al. 2015; docs/methods/kd.md) as in the heterogeneous benchmarks of the OFA / FOFA code: T = 1,
# KD weight 1, CE weight 1 (its label smoothing 0.1 comes from the recipe). Pair-agnostic: a concrete config merges
# `method` into its pair's model (`model = {{_base_.method}}`).
method = dict(distillers=[dict(type='kd', temperature=1.0, loss_weight=1.0)])
