default_scope = 'kdzoo'
# kdzoo.engine.runner.KdzooRunner: atomic checkpoints, resume with fallback, a lock on the work_dir
runner_type = 'KdzooRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),  # a line every few seconds on a CPU (with the ETA)
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    finite_weights=dict(type='FiniteWeightsHook'),  # no checkpoint holding NaN/inf is ever written
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
# Losses below 0.01 print with 4 significant digits (mmengine's fixed 4 decimals show 2e-5 as 0.0000)
log_processor = dict(type='kdzoo.SignificantDigitsLogProcessor', by_epoch=True, window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
