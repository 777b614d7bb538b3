# Same setting as on CIFAR-100: the heterogeneous ImageNet table (method_specs §10.2) uses the OFA code's defaults.
_base_ = ['../../../cifar100/_base_/methods/dist.py']
