# Your own faces, step 2 with KD on the margin heads' identity logits (face_kd, T = 4; configs/face/orl_kd.py):
#   FACE_DATA_ROOT=data/my_faces python tools/train.py configs/face/custom_kd.py
_base_ = ['./_base_/custom_distill.py']
model = dict(distillers=[dict(type='face_kd', temperature=4.0)])
