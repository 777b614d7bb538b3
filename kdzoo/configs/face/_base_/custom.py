# Models and schedule of the custom face configs (configs/face/custom_*.py; data: configs/_base_/datasets/
# face_custom.py). The pair of the ORL quick start, which trains from scratch on a few hundred faces in minutes
# on a CPU: a small face Swin teacher (patch 2, window 7, width 32, depths 2-2-2-2, stages at 56/28/14/7) and a
# MobileFaceNet with one residual unit per stage (the 512x7x7 map before GDC that URFM reads). The margin heads'
# num_classes='auto' is read from <data_root>/property. For the paper's sizes (thousands of people, a GPU), use
# backbone=dict(type='face_swin_s') for the teacher and dict(type='mobilefacenet') for the student, and
# ArcFace m=0.5 (configs/face/_base_/swin_s-mbf.py).
# ArcFace s=64, m=0.3 (the ORL quick start's margin for few identities trained from scratch).
# A distillation config's teacher dict must equal custom_teacher.py's model: the teacher is loaded strictly.
_base_ = ['../../_base_/default_runtime.py', '../../_base_/datasets/face_custom.py',
          '../../_base_/schedules/face_sgd_20e.py']
margin_head = dict(type='ArcFaceHead', num_classes={{_base_.num_classes}}, s=64.0, m=0.3)
face_teacher = dict(type='FaceRecognizer',
                    backbone=dict(type='FaceSwin', arch='tiny', embed_dim=32, depths=(2, 2, 2, 2),
                                  num_heads=(1, 2, 4, 8), drop_path_rate=0.0),
                    head=margin_head)
face_student = dict(type='FaceRecognizer', backbone=dict(type='mobilefacenet', blocks=(1, 1, 1, 1)),
                    head=margin_head)
# Where custom_kd.py / custom_urfm_apt.py look for the teacher, and custom_teacher.py's weights are written when
# they train it first. Delete it after changing the data (its head has one centre per training identity).
teacher_checkpoint = 'work_dirs/face/custom_teacher.safetensors'

# The face recipe's SGD (face_sgd_20e.py: momentum 0.9, weight decay 5e-4, gradient clipping at norm 5, linear
# decay to 0) for 20 epochs, LR 0.1 with a linear warm-up from 0.01 over the first epoch; validation every epoch,
# the best checkpoint kept. Both schedules start at 0 and the decay has no `end`, so it lasts to train_cfg.max_epochs, also when that
# is overridden (even to 1).
max_epochs = 20
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=True, begin=0, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=64)
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='set from face_data'))
