# The OFA-KD / FOFA recipe for CNN students, shared by CIFAR-100 and ImageNet-1K (docs/methods/conventions.md,
# 'Heterogeneous CIFAR-100 and ImageNet recipes'; Hao840/OFAKD configs/{cifar,imagenet}/cnn.yaml + train.py
# defaults): SGD with momentum 0.9 (Nesterov, as timm's 'sgd'), no weight decay on 1-D parameters (biases and norm
# weights, as timm's optimizer factory), 3 linear warm-up epochs from LR 1e-4 (train.py's warmup_lr), no colour
# jitter, no mixup. Every run first evaluates its teachers (TeacherEvalHook, docs/methods/conventions.md,
# 'Teachers'), validates every epoch and keeps the best checkpoint. The dataset recipes cifar100_cnn_300e.py and
# imagenet_cnn_100e.py add the data, the epochs, the LR, the weight decay, the schedule after the warm-up and label
# smoothing (it lives in `model`, which the dataset file also sets: mmengine refuses a key of two sibling bases).
_base_ = ['../default_runtime.py']

warmup_epochs = 3
warmup_lr = 1e-4
train_cfg = dict(by_epoch=True, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='SGD', momentum=0.9, nesterov=True),
    paramwise_cfg=dict(flat_decay_mult=0.0))
custom_hooks = [dict(type='TeacherEvalHook')]
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'))
