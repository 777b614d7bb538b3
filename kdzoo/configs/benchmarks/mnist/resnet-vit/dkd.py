# resnet-vit: DKD, alpha 1, beta 8, T = 4, one warm-up epoch.
_base_ = ['./_pair.py']
model = dict(distillers=[dict(type='dkd', alpha=1.0, beta=8.0, temperature=4.0, schedule=dict(warmup=1))])
