# Trains the involution teacher of the CivT quick start (RedNet-26, docs/methods/civt.md, 'Involution and RedNet', one input channel) on
# the embedded MNIST split. configs/quickstart/civt.py runs this first when
# work_dirs/quickstart/rednet_teacher.safetensors does not exist. RedNet-26 is the smallest RedNet and
# ~10x slower per step than the CNN teacher on a CPU (unfold-based involution), hence one epoch.
_base_ = ['./_mnist.py']
max_epochs = 1
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
model = dict(student={{_base_.rednet_teacher}})
