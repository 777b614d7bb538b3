# MS1MV2: trains the IResNet-50 teacher of configs/face/iresnet50-mbf_urfm_apt.py alone, with arcface_torch's
# standard recipe (configs/_base_/schedules/face_sgd_20e.py; ArcFace s=64, m=0.5). arcface_torch reports IJB-C
# TPR@FPR=1e-4 95.97 for r50 on MS1MV2 (docs/face_reference.md §7). Then write the bare FaceRecognizer:
#   python tools/export.py configs/face/iresnet50_teacher.py work_dirs/iresnet50_teacher/epoch_20.pth \
#       --out-dir work_dirs/face --name iresnet50_ms1mv2 --no-onnx
_base_ = ['./_base_/swin_s-mbf.py']
model = dict(_delete_=True, type='DistillModel',
             student=dict(type='FaceRecognizer', backbone=dict(type='iresnet50'), head={{_base_.margin_head}}),
             input_size={{_base_.input_size}}, data_preprocessor={{_base_.data_preprocessor}})
custom_hooks = []
