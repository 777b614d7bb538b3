# resnet-vit: OFA-KD, eps 1, T = 1, exits on every stage.
_base_ = ['./_pair.py']
model = dict(distillers=[dict(type='ofa', eps=1.0, temperature=1.0)])
