# MS1MV2 (insightface "faces_emore": 85,742 identities, 5,822,653 aligned 112x112 faces; docs/face_recognition.md)
# for training, and the LFW (6,000 pairs), CFP-FP (7,000) and AgeDB-30 (6,000) verification sets for validation
# and test, each scored by its own FaceVerificationMetric (prefixes lfw/, cfp_fp/, agedb_30/) through
# MultiSetValLoop / MultiSetTestLoop. Protocol: each face and its horizontal flip are embedded (DistillModel's
# flip test), the sum is L2-normalised, squared-L2 distance, 10 contiguous folds -> Accuracy-Flip (mean +- std),
# plus VAL@FAR=1e-3, TPR@FPR=1e-2 and AUC.
#
# Layout (the insightface download as it is; build a RecordIO from an image folder with tools/face2rec.py):
#   <data_root>/train.rec     MXNet RecordIO images (record 0 = header)
#   <data_root>/train.idx     record offsets
#   <data_root>/property      "85742,112,112"
#   <data_root>/lfw.bin, cfp_fp.bin, agedb_30.bin
# data_root defaults to data/ms1mv2; set it once with the MS1MV2_ROOT environment variable
# (MS1MV2_ROOT=/data/faces_emore python tools/train.py ...), or per dataset with --cfg-options
# train_dataloader.dataset.data_root=DIR val_dataloader.0.dataset.data_root=DIR ... .
# When the files are missing, building a dataset raises an error that lists every path looked for, shows this
# layout and points at the ORL quick start (configs/face/orl_*.py), which runs offline.
#
# Faces are already aligned and 112x112: no resizing (input, normalisation and flip: face_112.py).
#
# IJB-B and IJB-C 1:1 verification (docs/face_reference.md §3) join the TEST sets (tools/test.py, not the
# validation during training) when the IJB_ROOT environment variable names insightface's IJB release:
#   $IJB_ROOT/IJBB/loose_crop/   $IJB_ROOT/IJBB/meta/ijbb_{face_tid_mid,template_pair_label,name_5pts_score}.txt
#   $IJB_ROOT/IJBC/loose_crop/   $IJB_ROOT/IJBC/meta/ijbc_{face_tid_mid,template_pair_label,name_5pts_score}.txt
# e.g. IJB_ROOT=/data/IJB_release python tools/test.py configs/face/cakd_urfm_apt.py CHECKPOINT
# IJBDataset aligns each loose crop to 112x112 with its 5 landmarks (arcface template); IJBMetric (prefixes
# ijbb/, ijbc/) uses arcface_torch's defaults: flip fusion, image norms kept, detector-score weighting (N1D1F1).
# Without IJB_ROOT the test sets are the three .bin sets alone.
_base_ = ['./face_112.py']
data_root = '{{$MS1MV2_ROOT:data/ms1mv2}}'
num_classes = 85742

train_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True, pin_memory=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='FaceRecordIODataset', data_root=data_root, rec_file='train.rec', idx_file='train.idx',
                 property_file='property', pipeline={{_base_.train_pipeline}}))

verification_sets = ('lfw', 'cfp_fp', 'agedb_30')
val_dataloader = [
    dict(batch_size=128, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
         dataset=dict(type='FaceVerificationBin', data_root=data_root, path=f'{name}.bin',
                      pipeline={{_base_.test_pipeline}}))
    for name in verification_sets]
val_evaluator = [dict(type='FaceVerificationMetric', prefix=name, far_target=1e-3, fprs=(1e-2,))
                 for name in verification_sets]
val_cfg = dict(type='MultiSetValLoop')
# mmengine's {{$VAR:default}} needs a non-empty default: 'unset' stands for "no IJB_ROOT". (`import os` is no
# way out: mmengine 0.10 takes a config importing os for a lazy-import config on Python >= 3.11.)
ijb_root = '{{$IJB_ROOT:unset}}'
ijb_targets = ('IJBB', 'IJBC') if ijb_root != 'unset' else ()
ijb_test_dataloader = [
    dict(batch_size=128, num_workers=8, sampler=dict(type='DefaultSampler', shuffle=False),
         dataset=dict(type='IJBDataset', data_root=f'{ijb_root}/{target}', target=target, image_size=112,
                      pipeline={{_base_.test_pipeline}}))
    for target in ijb_targets]
ijb_test_evaluator = [dict(type='IJBMetric', prefix=target.lower(), normalize=False, use_detector_score=True,
                           use_flip=True)
                      for target in ijb_targets]
test_dataloader = val_dataloader + ijb_test_dataloader
test_evaluator = val_evaluator + ijb_test_evaluator
test_cfg = dict(type='MultiSetTestLoop')
