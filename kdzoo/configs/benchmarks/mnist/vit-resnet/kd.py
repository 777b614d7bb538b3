# vit-resnet: KD (Hinton et al.), T = 4.
_base_ = ['./_pair.py']
model = dict(distillers=[dict(type='kd', temperature=4.0)])
