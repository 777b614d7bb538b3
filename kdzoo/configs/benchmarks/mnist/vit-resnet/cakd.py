# vit-resnet: CAKD: PCA + GL projectors on stage 1, multi-view robust training with the discriminator (weight 0.2, ramped over epochs 1-3).
_base_ = ['./_pair.py']
model = dict(distillers=[dict(type='cakd', student_stage='stage1', loss_weight=0.2, schedule=dict(ramp_start=1, ramp_end=3))])
optim_wrapper = dict(constructor='DistillOptimWrapperConstructor', discriminator_lr_mult=0.01)
train_dataloader = dict(dataset=dict(pipeline=[dict(type='MultiViewGenerator'), dict(type='mmpretrain.PackInputs')]))
