# OFA-KD (Hao et al. 2023): exit branches on the four CNN stages, eps = 1 (CIFAR default), T = 1.
_base_ = ['./_distill.py']
model = dict(distillers=[dict(type='ofa', eps=1.0, temperature=1.0)])
