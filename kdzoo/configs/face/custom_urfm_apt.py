# Your own faces, step 2 with URFM + APT (docs/methods/urfm.md; configs/face/orl_urfm_apt.py): 25 trainable
# prompts per Swin stage, URFM on the 7x7 grid with the facial positional encoding.
#   FACE_DATA_ROOT=data/my_faces python tools/train.py configs/face/custom_urfm_apt.py
_base_ = ['./_base_/custom_distill.py']
model = dict(adapters=[dict(type='apt', target='swin', num_prompts=25)],
             distillers=[dict(type='urfm', center_grid=7, facial_pe='euclidean+saliency')])
