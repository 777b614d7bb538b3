# resnet-vit: the student alone (no distiller; the teacher is only evaluated, as the reference row).
_base_ = ['./_pair.py']
