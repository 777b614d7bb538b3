# KD (Hinton et al. 2015): ViT teacher -> CNN student on embedded MNIST. T = 4 as in mdistiller's CIFAR
# setting, loss weights 1 / 1.
_base_ = ['./_distill.py']
model = dict(distillers=[dict(type='kd', temperature=4.0)])
