# MS1MV2: URFM + APT (Zhao, Zhu, He, Zhang, Lei, "Cross-Architecture Distillation for Face Recognition", ACM MM
# 2023; docs/methods/urfm.md): face Swin-S teacher -> MobileFaceNet student, ArcFace s=64, m=0.5.
#   APT (adapter `apt`): the frozen Swin-S teacher gets t = 25 trainable prompts per basic layer (the paper's
#       default); only the prompts train, through the distillation losses.
#   URFM (distiller `urfm`): L = 49 learnable local centres on the 7x7 grid, shared by both branches, with the
#       facial positional encoding (Euclidean + saliency distance to the nose-tip anchor of the 5-point template),
#       pool the teacher's last-stage tokens + prompt outputs and the student's 512x7x7 map before GDC; one MSA
#       layer; losses MSE on its L x L attention maps and on its outputs (weights 1). The remaining sizes are the
#       [PROPOSED] defaults of docs/methods/urfm.md (d = 512, 8 heads, EMA teacher branch and prompt anchor guards).
# Teacher checkpoint: see configs/face/_base_/swin_s-mbf.py (placeholder work_dirs/face/swin_s_ms1mv2.safetensors).
# Numbers the paper reports (docs/methods/urfm.md, 'Paper numbers', docs/face_reference.md §7; not reproduced by kdzoo):
#   full method: IJB-C TPR@FPR=1e-4 94.40 | IJB-B 92.48 | MegaFace rank-1 95.37 | CFP-FP 94.63 | CPLFW 91.14 |
#                AgeDB 97.20
#   student baseline: 89.13 | 87.07 | 90.91 | CFP-FP 91.66 | CPLFW 87.93 | AgeDB 95.82
#   ablations (AgeDB): Euclidean + saliency PE 97.20 vs Euclidean only 96.66; 25 prompts 97.20 vs frozen teacher
#   without prompts 95.94.
_base_ = ['./_base_/swin_s-mbf.py']
model = dict(adapters=[dict(type='apt', target='swin', num_prompts=25)],
             distillers=[dict(type='urfm', center_grid=7, facial_pe='euclidean+saliency')])
