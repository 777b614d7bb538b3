# Aligned 112x112 RGB faces, the input of kdzoo's face models (arcface_torch's): no resizing, normalised as
# (x/255 - 0.5)/0.5; training adds a random horizontal flip (the standard face recipe). The face data configs
# (ms1mv2.py, face_custom.py, and configs/face/_base_/orl.py with its own padding pipelines) start from it.
input_size = (3, 112, 112)
data_preprocessor = dict(type='mmpretrain.ClsDataPreprocessor', mean=[127.5, 127.5, 127.5],
                         std=[127.5, 127.5, 127.5], to_rgb=False)
train_pipeline = [
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs'),
]
test_pipeline = [dict(type='mmpretrain.PackInputs')]
