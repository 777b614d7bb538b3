# Your own image folder for classification (docs/own_data.md):
#   <data_root>/train/<class>/*.jpg      training images, one sub-folder per class
#   <data_root>/val/<class>/*.jpg        validation images, the same class names (a class may be missing)
# Labels are the class folders of train/ in sorted order (kdzoo's ImageFolder: every split uses train/'s
# classes, and a num_classes that differs from the number of class folders is an error naming both).
# Set the folder and the number of classes with environment variables, which reach every config of this folder
# (also a teacher trained first through teacher_configs):
#   OWN_DATA_ROOT=/data/flowers OWN_NUM_CLASSES=5 python tools/train.py configs/own_data/kd.py
# or per dataset with --cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR
# test_dataloader.dataset.data_root=DIR (num_classes is used in several places: change it with OWN_NUM_CLASSES).
# Images are read BGR by LoadImageFromFile and turned to RGB by the data preprocessor (to_rgb=True), then
# normalised with ImageNet's mean/std, which is what timm's ImageNet-pretrained weights expect. Training crops a
# random area (8-100%) resized to image_size and flips; evaluation resizes the short edge to image_size / 0.875
# and takes the centre crop (timm's crop_pct 0.875).
data_root = '{{$OWN_DATA_ROOT:data/own_data}}'
num_classes = {{'$OWN_NUM_CLASSES:2'}}
image_size = 224
input_size = (3, image_size, image_size)
imagenet_mean_255 = [123.675, 116.28, 103.53]
imagenet_std_255 = [58.395, 57.12, 57.375]
data_preprocessor = dict(type='mmpretrain.ClsDataPreprocessor', mean=imagenet_mean_255, std=imagenet_std_255,
                         to_rgb=True, num_classes=num_classes)
train_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    dict(type='mmpretrain.RandomResizedCrop', scale=image_size, backend='pillow', interpolation='bicubic'),
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs'),
]
test_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=int(image_size / 0.875), edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='mmpretrain.CenterCrop', crop_size=image_size),
    dict(type='mmpretrain.PackInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageFolder', data_root=data_root, split='train', num_classes=num_classes,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageFolder', data_root=data_root, split='val', num_classes=num_classes,
                 pipeline=test_pipeline))
val_evaluator = dict(type='mmpretrain.Accuracy', topk=(1,))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
