# resnet-vit: FitNet on the four stages.
_base_ = ['./_pair.py']
model = dict(distillers=[dict(type='fitnet')])
