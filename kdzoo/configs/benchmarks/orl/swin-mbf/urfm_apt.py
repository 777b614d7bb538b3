# ORL benchmark, small face Swin -> small MobileFaceNet: configs/face/orl_urfm_apt.py as it is.
_base_ = ['../../../face/orl_urfm_apt.py']
