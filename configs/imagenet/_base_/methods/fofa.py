# FOFA / PAT on ImageNet-1K (docs/methods/fofa.md): as on CIFAR-100 but with M = 144 RAA queries.
method = dict(distillers=[dict(type='fofa', num_queries=144, dim=512, temperature=1.0)],
              adapters=[dict(type='afp', target='teacher')])
