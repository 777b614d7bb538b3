# ORL quick start: KD on the margin heads' identity logits (face_kd: s * cos(embedding, own ArcFace centres), no
# margin, T = 4; see configs/face/swin_s-mbf_kd.py for why this is the face form of KD). The teacher and the
# student share the 28 training identities, so their identity distributions compare class by class.
#   python tools/train.py configs/face/orl_kd.py
_base_ = ['./_base_/orl_distill.py']
model = dict(distillers=[dict(type='face_kd', temperature=4.0)])
