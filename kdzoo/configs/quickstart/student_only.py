# Reference: the CNN student trained alone (same data, schedule and model as the distillation configs).
_base_ = ['./_student.py']
