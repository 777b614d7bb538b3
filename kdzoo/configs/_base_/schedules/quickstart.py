# A few epochs of AdamW with a cosine decay: enough for the embedded MNIST pairs on 2 CPU cores. The cosine has no
# T_max / end: mmengine's runner ends a scheduler without `end` at train_cfg.max_epochs (T_max = end - begin), so
# a config that trains longer or shorter sets train_cfg.max_epochs only (also --cfg-options
# train_cfg.max_epochs=N).
max_epochs = 6
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, eta_min=1e-5, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=64)
