# CIFAR-100 upsampled to 224x224: the heterogeneous protocol of OFA-KD and FOFA (docs/methods/conventions.md,
# 'Heterogeneous CIFAR-100 and ImageNet recipes').
# Mirrors the OFA code (Hao840/OFAKD train.py, timm 0.6.5 loader at the model's 224 input):
#   train: RandomResizedCrop(224, scale 0.08-1, ratio 3/4-4/3, bilinear or bicubic at random) + h-flip;
#          ViT/MLP students add RandAugment rand-m9-mstd0.5-inc1 and random erasing 0.25 ('pixel' mode).
#          (Colour jitter 0.4 of the ViT recipe is a no-op in timm when RandAugment is on, so it is left out;
#          the CNN recipe sets it to 0.)
#   eval:  Resize(floor(224 / crop_pct)) + CenterCrop(224), bilinear, with the student's timm crop_pct:
#          0.875 -> 256 (ResNet-18, MobileNetV2, ResMLP-S12) in `test_pipeline`; 0.9 -> 248 (DeiT-T, Swin)
#          in `crop_pct_0_9_test_pipeline`, which those pairs select.
#   mean/std: CIFAR-100's (0.5071, 0.4865, 0.4409) / (0.2673, 0.2564, 0.2762); images are RGB already.
# The train dataloader uses `cnn_train_pipeline`; configs/_base_/schedules/cifar100_vit_300e.py switches to
# `vit_train_pipeline`. Data: the python release, <data_root>/cifar-100-python/{train,test,meta}; point at it with
#   --cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR \
#                 test_dataloader.dataset.data_root=DIR
# `CIFAR100` is kdzoo's wrapper of mmpretrain's (kdzoo/datasets/cifar.py): no download, and a missing folder
# fails at once naming the files and these keys.
data_root = 'data/cifar100'
cifar100_mean = [0.5071, 0.4865, 0.4409]
cifar100_std = [0.2673, 0.2564, 0.2762]
mean_255 = [255 * x for x in cifar100_mean]
std_255 = [255 * x for x in cifar100_std]

model = dict(data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor', mean=mean_255, std=std_255,
                                    to_rgb=False, num_classes=100))

# timm's 'random' train interpolation: each image is cropped with bilinear or bicubic resampling at random.
random_resized_crop = dict(type='mmcv.RandomChoice', transforms=[
    [dict(type='mmpretrain.RandomResizedCrop', scale=224, backend='pillow', interpolation='bilinear')],
    [dict(type='mmpretrain.RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic')],
])
cnn_train_pipeline = [
    random_resized_crop,
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs'),
]
vit_train_pipeline = [
    random_resized_crop,
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    # _scope_: RandAugment builds its 15 operations by bare name while it is built; under the runner's 'kdzoo'
    # scope they would not resolve.
    dict(type='mmpretrain.RandAugment', _scope_='mmpretrain', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in mean_255], interpolation='bicubic')),
    # timm's re_mode 'pixel' (per-pixel N(0, 1) after normalisation) = N(mean, std) per pixel before it.
    dict(type='mmpretrain.RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=mean_255, fill_std=std_255),
    dict(type='mmpretrain.PackInputs'),
]


def eval_pipeline(short_edge):
    """timm's eval transform: resize the short edge to floor(224 / crop_pct), centre-crop 224. (A function in a
    config is not part of the config: mmengine drops it.)"""
    return [
        dict(type='mmpretrain.ResizeEdge', scale=short_edge, edge='short', backend='pillow', interpolation='bilinear'),
        dict(type='mmpretrain.CenterCrop', crop_size=224),
        dict(type='mmpretrain.PackInputs'),
    ]


test_pipeline = eval_pipeline(256)
crop_pct_0_9_test_pipeline = eval_pipeline(248)

train_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True, pin_memory=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CIFAR100', data_root=data_root, split='train', pipeline=cnn_train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CIFAR100', data_root=data_root, split='test', pipeline=test_pipeline))
val_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
