# The ORL quick start: the embedded ORL faces (kdzoo/data/orl_faces, AT&T "Database of Faces", Olivetti Research
# Laboratory; 38 subjects x 10 grey 92x112 images) with kdzoo's fixed open-set split (ORLFaces): 28 training
# identities (280 images) and 10 held-out identities (100 images) evaluated as 1:1 verification on all 4,950
# pairs (450 genuine, 4,500 impostor). The scores are the verification protocol of docs/face_recognition.md:
# embeddings of each face and its horizontal flip, fused, L2-normalised, 10-fold accuracy, VAL@FAR=1e-3,
# TPR@FPR=1e-2 and AUC. Faces are padded (not resampled) to 112x112, as the face backbones expect, and
# normalised as (x/255 - 0.5)/0.5; training adds a random horizontal flip (the standard face augmentation).
#
# Models (shared by every ORL config; a distillation config's teacher dict must equal orl_teacher.py's model,
# because the trained teacher's weights are loaded strictly):
#   orl_teacher: a small face Swin at 112x112 (patch 2, window 7, embed 32, depths 2-2-2-2, heads 1-2-4-8):
#                stages at 56/28/14/7 like the Swin-S teacher of the MS1MV2 configs, ~8.7M parameters.
#   orl_student: a MobileFaceNet with one residual unit per stage (blocks 1-1-1-1, ~0.7M parameters): the
#                layout of the 1.19M MobileFaceNet (same widths, the 512x7x7 map before GDC) at about half
#                its CPU time per step.
# Margin head: ArcFace s=64 with a smaller margin than the standard 0.5, m=0.3: a kdzoo choice for 28 identities
# and 8 epochs from scratch (measured by kdzoo, one seed: the teacher reaches AUC 0.977 on the held-out pairs
# with m=0.3 and 0.967 with m=0.5).
# Input size and normalisation: the face models' (configs/_base_/datasets/face_112.py); the pipelines pad first.
_base_ = ['../../_base_/datasets/face_112.py', '../../_base_/schedules/face_sgd_20e.py']
num_classes = 28
train_pipeline = [
    dict(type='FaceResize', size=112, mode='pad'),
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs'),
]
test_pipeline = [
    dict(type='FaceResize', size=112, mode='pad'),
    dict(type='mmpretrain.PackInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ORLFaces', split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=50, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ORLFaces', split='test', pipeline=test_pipeline))
val_evaluator = dict(type='FaceVerificationMetric', prefix='orl', fprs=(1e-2,))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

margin_head = dict(type='ArcFaceHead', num_classes=num_classes, s=64.0, m=0.3)
orl_teacher = dict(type='FaceRecognizer',
                   backbone=dict(type='FaceSwin', arch='tiny', embed_dim=32, depths=(2, 2, 2, 2),
                                 num_heads=(1, 2, 4, 8), drop_path_rate=0.0),
                   head=margin_head)
orl_student = dict(type='FaceRecognizer', backbone=dict(type='mobilefacenet', blocks=(1, 1, 1, 1)),
                   head=margin_head)
# Shipped with kdzoo (kdzoo/data/teachers/README.md: how it was trained, its numbers); if the file is missing,
# the distillation configs train it first with configs/face/orl_teacher.py (teacher_configs).
teacher_checkpoint = 'kdzoo/data/teachers/orl_swin_teacher.safetensors'

# Schedule (teacher and students): the face recipe's SGD (face_sgd_20e.py: momentum 0.9, weight decay 5e-4,
# gradient clipping at norm 5, linear decay to 0), shortened to 8 epochs of 17 steps (batch 16), LR 0.1 after a
# one-epoch linear warm-up from 0.01.
max_epochs = 8
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
