# Cross-architecture FitNet (docs/methods/fitnet.md) as in the heterogeneous tables: hints at stages 1-4, MSE
# per stage summed, weight 1, CE weight 1, KD weight 0 (pure FitNet: no `kd` distiller beside it). Aligners are
# chosen from the probed shapes (kdzoo/methods/fitnet/distiller.py). Pair-agnostic (merged by `model = {{_base_.method}}`).
fitnet_stages = ('stage1', 'stage2', 'stage3', 'stage4')
method = dict(distillers=[dict(type='fitnet', stages=fitnet_stages, loss_weight=1.0)])
# The OFA / PAT code runs timm 0.6.5, whose Swin emits tokens, so it treats Swin as a token model; kdzoo reads Swin
# stages as (B, C, H, W) maps. Pairs with a Swin teacher or a Swin student use these variants to get PAT's token
# aligners (a concrete config picks one with `model = {{_base_.method_swin_teacher}}`).
method_swin_teacher = dict(distillers=[dict(type='fitnet', stages=fitnet_stages, loss_weight=1.0,
                                            teacher_kind='tokens')])
method_swin_student = dict(distillers=[dict(type='fitnet', stages=fitnet_stages, loss_weight=1.0,
                                            student_kind='tokens')])
