# FitNet with the cross-architecture aligners of docs/methods/fitnet.md: all four CNN stages regress the ViT's
# stage tokens (CLS removed), weight 1, plus CE.
_base_ = ['./_distill.py']
model = dict(distillers=[dict(type='fitnet')])
