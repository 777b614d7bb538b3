# ORL quick start of URFM + APT (docs/methods/urfm.md; the MS1MV2 configuration is configs/face/cakd_urfm_apt.py):
# APT prompts (t = 25 per basic layer) on the frozen small face Swin teacher, URFM on its last-stage 7x7 tokens +
# prompt outputs and the student's 512x7x7 map before GDC, with the defaults of docs/methods/urfm.md. The teacher is
# trained first with configs/face/orl_teacher.py when its checkpoint does not exist yet.
#   python tools/train.py configs/face/orl_urfm_apt.py
_base_ = ['./_base_/orl_distill.py']
model = dict(adapters=[dict(type='apt', target='swin', num_prompts=25)],
             distillers=[dict(type='urfm', center_grid=7, facial_pe='euclidean+saliency')])
