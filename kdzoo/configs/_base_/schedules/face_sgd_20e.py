# The standard MS1MV2 recipe of insightface arcface_torch (docs/face_reference.md §7): SGD, LR 0.1, momentum 0.9,
# weight decay 5e-4, batch 128 per GPU x 8 GPUs (1,024), 20 epochs, linear decay to 0 (poly, power 1) stepped
# every iteration, gradient clipping at norm 5, fp16 with a dynamic grad scaler. fp16 is switched on with
# tools/train.py --amp (AmpOptimWrapper, dynamic loss scale), so that the same config also runs in fp32 (CPU).
# With another number of GPUs keep the global batch of 1,024 or set auto_scale_lr.enable=True.
# Other documented recipes: arcface_torch trains MobileFaceNet for 40 epochs with weight decay 1e-4; the EKD
# setting (the comparison table of URFM + APT) uses LR 0.1 divided by 10 at epochs 10, 18 and 22, 26 epochs,
# weight decay 5e-4.
max_epochs = 20
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
                     clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=1024)
