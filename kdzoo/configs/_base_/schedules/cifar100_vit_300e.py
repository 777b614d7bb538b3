# Recipe of OFA-KD / FOFA for ViT / MLP (token) students on CIFAR-100 at 224x224 (docs/methods/conventions.md,
# 'Heterogeneous CIFAR-100 and ImageNet recipes'; Hao840/OFAKD configs/cifar/vit_mlp.yaml): the shared ViT / MLP
# recipe (vit_mlp_adamw.py: 300 epochs, AdamW 5e-4, 20 warm-up epochs from 5e-7, cosine to 1e-5, weight decay 0.05,
# gradient clipping at norm 5) with batch 128 on one GPU, label smoothing 0.1 (model.label_smoothing, also applied
# to the mixed labels as timm's Mixup does), RandAugment rand-m9-mstd0.5-inc1 + random erasing 0.25 (the dataset's
# `vit_train_pipeline`), mixup 0.8 / cutmix 1.0 (one of the two per batch, as timm's switch_prob 0.5) in the data
# preprocessor.
# A whole recipe: dataset + runtime included.
_base_ = ['../datasets/cifar100_224.py', './vit_mlp_adamw.py']

train_dataloader = dict(dataset=dict(pipeline={{_base_.vit_train_pipeline}}))
auto_scale_lr = dict(enable=False, base_batch_size=128)
model = dict(
    label_smoothing=0.1,
    data_preprocessor=dict(batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8),
                                                         dict(type='CutMix', alpha=1.0)])))
