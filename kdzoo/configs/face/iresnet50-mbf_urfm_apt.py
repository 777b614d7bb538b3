# MS1MV2: URFM with an IResNet-50 teacher -> MobileFaceNet student (the homologous CNN -> CNN comparison of the
# URFM + APT paper, docs/methods/urfm.md), ArcFace s=64, m=0.5. URFM only: APT inserts prompt tokens into the
# attention of a transformer teacher's basic layers, and a CNN has no tokens or attention to prompt, so the
# IResNet-50 teacher stays frozen as it is. URFM pools the teacher's layer4 map (512x7x7) and the student's
# 512x7x7 map before GDC onto the same 49 local centres (defaults of docs/methods/urfm.md).
# Teacher checkpoint (placeholder, not shipped): work_dirs/face/iresnet50_ms1mv2.safetensors, the IResNet-50
# FaceRecognizer trained on MS1MV2 with configs/face/iresnet50_teacher.py (see its header), or your own file.
# Numbers reported (docs/face_reference.md §7; the paper's IR-50 -> MobileFaceNet URFM numbers were not
# readable, docs/methods/urfm.md, 'Paper numbers'):
#   IR-50 teacher: IJB-C TPR@FPR=1e-4 95.16 | IJB-B 93.45 | MegaFace 98.14 | CFP-FP 97.63 | CPLFW 92.50 | AgeDB 97.92
#   student without KD: 89.13 | 87.07 | 90.91 | 91.66 | 87.93 | 95.82
#   EKD (IR-50 teacher): 90.48 | 88.35 | 91.02 | 94.33 | 89.35 | 96.48
_base_ = ['./_base_/swin_s-mbf.py']
ir50_teacher = dict(type='FaceRecognizer', backbone=dict(type='iresnet50'), head={{_base_.margin_head}})
model = dict(teachers=dict(_delete_=True,
                           ir50=dict(model=ir50_teacher, checkpoint='work_dirs/face/iresnet50_ms1mv2.safetensors')),
             distillers=[dict(type='urfm', center_grid=7, facial_pe='euclidean+saliency')])
