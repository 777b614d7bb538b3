# resnet-vit: RKD on the pre-logits embeddings, distance 25, angle 50.
_base_ = ['./_pair.py']
model = dict(distillers=[dict(type='rkd', distance_weight=25.0, angle_weight=50.0)])
