# mixer-resnet: DIST, beta 1, gamma 1, T = 1.
_base_ = ['./_pair.py']
model = dict(distillers=[dict(type='dist', beta=1.0, gamma=1.0, temperature=1.0)])
