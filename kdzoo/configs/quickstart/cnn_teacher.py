# Trains the CNN teacher of the CivT quick start (ResNet-10-T, widths 32-256) on the embedded MNIST split.
# configs/quickstart/civt.py runs this first when work_dirs/quickstart/cnn_teacher.safetensors does not exist.
_base_ = ['./_mnist.py']
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
model = dict(student={{_base_.cnn_teacher}})
