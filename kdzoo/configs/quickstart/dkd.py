# DKD (Zhao et al. 2022): alpha 1, beta 8, T 4, one warm-up epoch (mdistiller CIFAR values, warm-up scaled
# to this 6-epoch schedule).
_base_ = ['./_distill.py']
model = dict(distillers=[dict(type='dkd', alpha=1.0, beta=8.0, temperature=4.0, schedule=dict(warmup=1))])
