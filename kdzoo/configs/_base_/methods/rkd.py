# RKD (Park et al. 2019; docs/methods/rkd.md) as in the OFA code: distance weight 25, angle weight 50 on the pooled
# pre-logit embeddings (no projector), overall weight 1; CE weight 1. Pair-agnostic (`model = {{_base_.method}}`).
method = dict(distillers=[dict(type='rkd', distance_weight=25.0, angle_weight=50.0, loss_weight=1.0)])
