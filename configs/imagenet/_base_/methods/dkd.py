# Same setting as on CIFAR-100: the heterogeneous ImageNet table (docs/methods/fofa.md, 'Paper numbers') uses the OFA code's defaults.
_base_ = ['../../../cifar100/_base_/methods/dkd.py']
