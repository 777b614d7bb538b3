# CAKD (Liu et al., ACCV 2022; docs/methods/cakd.md): partially-cross-attention and group-wise linear projectors
# on the CNN's stage-1 map, the stage whose 8x8 grid equals the ViT's patch grid (ResNet-50 at 224 uses
# stage 3 for ViT-B/16's 14x14), plus a PatchGAN on the attention maps trained by its own optimiser at
# 0.01x the LR. The code's ramp (off until epoch 26, full from 36) is squeezed into the 6 quick-start
# epochs: off in epoch 1, full from epoch 3. Multi-view inputs come from MultiViewGenerator.
_base_ = ['./_distill.py']
model = dict(distillers=[dict(type='cakd', student_stage='stage1', loss_weight=0.2,
                              schedule=dict(ramp_start=1, ramp_end=3))])
optim_wrapper = dict(constructor='DistillOptimWrapperConstructor', discriminator_lr_mult=0.01)
train_dataloader = dict(dataset=dict(pipeline=[dict(type='MultiViewGenerator'), dict(type='mmpretrain.PackInputs')]))
