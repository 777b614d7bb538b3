# ORL benchmark, small face Swin -> small MobileFaceNet: configs/face/orl_kd.py as it is.
_base_ = ['../../../face/orl_kd.py']
