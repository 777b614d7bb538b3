# vit-resnet: FOFA / PAT: RAA (64 queries, width 128) and AFP prompts in the teacher, T = 1.
_base_ = ['./_pair.py']
model = dict(distillers=[dict(type='fofa', num_queries=64, dim=128, temperature=1.0)], adapters=[dict(type='afp', target='teacher')])
