# The reference of docs/own_data.md: the CNN student fine-tuned alone on your classes (same data, schedule and
# starting weights as kd.py), to see what distillation adds.
_base_ = ['./_models.py', './_schedule.py']
model = dict(type='DistillModel', student={{_base_.cnn_student}}, input_size={{_base_.input_size}},
             data_preprocessor={{_base_.data_preprocessor}})
