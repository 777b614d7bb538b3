# The embedded MNIST test set split 8,000 / 2,000 (kdzoo/data/mnist/README.md), padded to 32x32, 1 channel.
data_preprocessor = dict(type='mmpretrain.ClsDataPreprocessor', mean=[33.3], std=[78.6], num_classes=10)
train_pipeline = [dict(type='mmpretrain.PackInputs')]
test_pipeline = [dict(type='mmpretrain.PackInputs')]
train_dataloader = dict(
    batch_size=64, num_workers=0, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='EmbeddedMNIST', split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=250, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='EmbeddedMNIST', split='test', pipeline=test_pipeline))
val_evaluator = dict(type='mmpretrain.Accuracy', topk=(1,))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
