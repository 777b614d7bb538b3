# MS1MV2: trains the face Swin-S teacher of the Swin-S -> MobileFaceNet configs alone (ArcFace s=64, m=0.5; the
# standard recipe of configs/_base_/schedules/face_sgd_20e.py; the URFM + APT paper does not give its teacher's
# recipe, docs/methods/urfm.md, 'Official code and kdzoo switches'). Then write the bare FaceRecognizer (backbone + head) where those configs look:
#   python tools/export.py configs/face/swin_s_teacher.py work_dirs/swin_s_teacher/epoch_20.pth \
#       --out-dir work_dirs/face --name swin_s_ms1mv2 --no-onnx
_base_ = ['./_base_/swin_s-mbf.py']
model = dict(_delete_=True, type='DistillModel', student={{_base_.teacher}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
custom_hooks = []
