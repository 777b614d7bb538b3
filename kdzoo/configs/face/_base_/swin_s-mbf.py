# MS1MV2 pair of URFM + APT (Zhao et al., ACM MM 2023; docs/methods/urfm.md): a face Swin-S teacher (112x112, patch 2,
# window 7: stages at 56/28/14/7, the 7x7 last stage URFM reads) -> the 1.19M-parameter MobileFaceNet student
# (its 512x7x7 map before GDC is the student feature), ArcFace s=64, m=0.5 (docs/methods/urfm.md), on the MS1MV2
# data and the standard recipe (configs/_base_/datasets/ms1mv2.py, configs/_base_/schedules/face_sgd_20e.py).
#
# Teacher checkpoint (placeholder path below, not shipped): the face Swin-S trained on MS1MV2 WITH its ArcFace head
# (85,742 centres), as a FaceRecognizer state dict or safetensors, e.g.
#   python tools/train.py configs/face/swin_s_teacher.py
#   python tools/export.py configs/face/swin_s_teacher.py work_dirs/swin_s_teacher/epoch_20.pth \
#       --out-dir work_dirs/face --name swin_s_ms1mv2 --no-onnx
# or point model.teachers.swin.checkpoint at your own file (--cfg-options). Loading is strict: a file without the
# head (e.g. a bare backbone) needs the teacher's `head=None`, which every method here but face KD accepts.
# The teacher is never trained implicitly here (no teacher_configs): a missing file is an error naming this path.
_base_ = ['../../_base_/datasets/ms1mv2.py', '../../_base_/schedules/face_sgd_20e.py',
          '../../_base_/default_runtime.py']
margin_head = dict(type='ArcFaceHead', num_classes={{_base_.num_classes}}, s=64.0, m=0.5)
student = dict(type='FaceRecognizer', backbone=dict(type='mobilefacenet'), head=margin_head)
teacher = dict(type='FaceRecognizer', backbone=dict(type='face_swin_s'), head=margin_head)
teacher_checkpoint = 'work_dirs/face/swin_s_ms1mv2.safetensors'
model = dict(
    type='DistillModel',
    student=student,
    teachers=dict(swin=dict(model=teacher, checkpoint=teacher_checkpoint)),
    input_size={{_base_.input_size}},
    data_preprocessor={{_base_.data_preprocessor}},
)
custom_hooks = [dict(type='TeacherEvalHook')]
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='agedb_30/acc', rule='greater'))
