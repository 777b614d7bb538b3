# Your own faces: the MobileFaceNet student trained alone, the reference that shows what distillation adds.
#   FACE_DATA_ROOT=data/my_faces python tools/train.py configs/face/custom_student.py
_base_ = ['./_base_/custom.py']
model = dict(type='DistillModel', student={{_base_.face_student}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
