# ImageNet-1K, the heterogeneous protocol of OFA-KD and FOFA (docs/methods/conventions.md, 'Heterogeneous CIFAR-100
# and ImageNet recipes', docs/methods/fofa.md).
# Mirrors the OFA code (timm 0.6.5 loader, student's default input 224):
#   train: RandomResizedCrop(224, scale 0.08-1, ratio 3/4-4/3, bilinear or bicubic at random) + h-flip;
#          ViT/MLP students add RandAugment rand-m9-mstd0.5-inc1 and random erasing 0.25 ('pixel' mode)
#          (colour jitter is a no-op in timm when RandAugment is on).
#   eval:  Resize(floor(224 / crop_pct) short edge) + CenterCrop(224) with the student's timm 0.6.5 defaults:
#          bicubic, 0.875 -> 256 (MobileNetV2, ResMLP-S12) in `test_pipeline`; bilinear, 0.875 (ResNet-18) in
#          `bilinear_test_pipeline`; bicubic, 0.9 -> 248 (DeiT-T) in `crop_pct_0_9_test_pipeline`.
#   mean/std: ImageNet's (timm IMAGENET_DEFAULT_MEAN/STD); images are loaded BGR and converted to RGB.
# Layout (mmpretrain ImageNet): <data_root>/train/<wnid>/*.JPEG and <data_root>/val/<wnid>/*.JPEG (or flat
# folders with meta/train.txt, meta/val.txt). Point at it with
#   --cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR \
#                 test_dataloader.dataset.data_root=DIR
data_root = 'data/imagenet'
imagenet_mean_255 = [123.675, 116.28, 103.53]
imagenet_std_255 = [58.395, 57.12, 57.375]
bgr_mean = imagenet_mean_255[::-1]
bgr_std = imagenet_std_255[::-1]

model = dict(data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor', mean=imagenet_mean_255,
                                    std=imagenet_std_255, to_rgb=True, num_classes=1000))

# timm's 'random' train interpolation: each image is cropped with bilinear or bicubic resampling at random.
random_resized_crop = dict(type='mmcv.RandomChoice', transforms=[
    [dict(type='mmpretrain.RandomResizedCrop', scale=224, backend='pillow', interpolation='bilinear')],
    [dict(type='mmpretrain.RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic')],
])
cnn_train_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    random_resized_crop,
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs'),
]
vit_train_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    random_resized_crop,
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    # _scope_: RandAugment builds its 15 operations by bare name while it is built; under the runner's 'kdzoo'
    # scope they would not resolve.
    dict(type='mmpretrain.RandAugment', _scope_='mmpretrain', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    # timm's re_mode 'pixel' (per-pixel N(0, 1) after normalisation) = N(mean, std) per pixel before it.
    dict(type='mmpretrain.RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=bgr_std),
    dict(type='mmpretrain.PackInputs'),
]


def eval_pipeline(short_edge, interpolation):
    """timm's eval transform: resize the short edge to floor(224 / crop_pct), centre-crop 224. (A function in a
    config is not part of the config: mmengine drops it.)"""
    return [
        dict(type='mmpretrain.LoadImageFromFile'),
        dict(type='mmpretrain.ResizeEdge', scale=short_edge, edge='short', backend='pillow',
             interpolation=interpolation),
        dict(type='mmpretrain.CenterCrop', crop_size=224),
        dict(type='mmpretrain.PackInputs'),
    ]


test_pipeline = eval_pipeline(256, 'bicubic')
bilinear_test_pipeline = eval_pipeline(256, 'bilinear')
crop_pct_0_9_test_pipeline = eval_pipeline(248, 'bicubic')

train_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True, pin_memory=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageNet', data_root=data_root, split='train', pipeline=cnn_train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNet', data_root=data_root, split='val', pipeline=test_pipeline))
val_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
