# Your own faces (docs/face_recognition.md, 'Your own faces'): a RecordIO training set and any verification .bin
# sets, both written by tools/face2rec.py from folders of photos (one sub-folder per person):
#   <data_root>/train.rec, train.idx, property     training faces; property = "num_classes,112,112"
#   <data_root>/pairs.bin                          verification pairs (held-out people), more sets beside it
# Everything data-specific is in `face_data`, which kdzoo.face.datasets.custom_config.resolve_face_data expands
# after --cfg-options (tools/train.py, test.py, export.py): the training data_root; one validation/test loader
# and one FaceVerificationMetric per set (the single dicts below are the template; each set's metrics are
# prefixed by its name); save_best = '<first set>/<best_metric>'; and num_classes='auto' in the margin heads
# read from <data_root>/property. Change it with environment variables or --cfg-options, e.g.
#   FACE_DATA_ROOT=data/my_faces python tools/train.py configs/face/custom_kd.py
#   --cfg-options face_data.data_root=data/my_faces "face_data.verification_sets=['pairs','/data/lfw.bin']"
# A set is a name (<data_root>/<name>.bin) or the path of a .bin file (its name is the file name).
# Faces are aligned 112x112 RGB (tools/face2rec.py --resize 112 112; input, normalisation and flip: face_112.py).
# Scores: the verification protocol of docs/face_recognition.md (flip fusion, 10-fold accuracy, VAL@FAR=1e-3,
# TPR@FPR=1e-2, AUC).
_base_ = ['./face_112.py']
face_data = dict(
    data_root='{{$FACE_DATA_ROOT:data/my_faces}}',
    verification_sets=['pairs'],
    best_metric='acc',
)
num_classes = 'auto'
train_dataloader = dict(
    batch_size=64, num_workers=2, persistent_workers=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='FaceRecordIODataset', data_root='set from face_data', rec_file='train.rec',
                 idx_file='train.idx', property_file='property', pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=64, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='FaceVerificationBin', path='set from face_data', pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='FaceVerificationMetric', far_target=1e-3, fprs=(1e-2,))
val_cfg = dict(type='MultiSetValLoop')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
test_cfg = dict(type='MultiSetTestLoop')
