from .feature import Feature, FeatureSpec, space_to_depth_tokens, to_map, to_tokens, token_grid
from .recorder import TapRecorder, describe_taps, resolve_tap, unwrap

__all__ = ['Feature', 'FeatureSpec', 'TapRecorder', 'describe_taps', 'resolve_tap', 'space_to_depth_tokens',
           'to_map', 'to_tokens', 'token_grid', 'unwrap']
