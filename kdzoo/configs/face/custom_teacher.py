# Your own faces, step 1 (docs/face_recognition.md, 'Your own faces'): the face Swin teacher trained alone on
# <data_root>/train.rec. custom_kd.py and custom_urfm_apt.py run this first when their teacher checkpoint does not
# exist (work_dirs/face/custom_teacher.safetensors); or run it yourself and export it there:
#   FACE_DATA_ROOT=data/my_faces python tools/train.py configs/face/custom_teacher.py
_base_ = ['./_base_/custom.py']
model = dict(type='DistillModel', student={{_base_.face_teacher}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
