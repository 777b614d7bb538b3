from .contract import TapContract, contract_of
from .feature import Feature, FeatureSpec, space_to_depth_tokens, to_map, to_tokens, token_grid
from .recorder import (TapRecorder, describe_taps, register_tap_kind, register_tap_prefix, resolve_tap,
                       unwrap)

__all__ = ['Feature', 'FeatureSpec', 'TapContract', 'TapRecorder', 'contract_of', 'describe_taps',
           'register_tap_kind', 'register_tap_prefix', 'resolve_tap', 'space_to_depth_tokens', 'to_map',
           'to_tokens', 'token_grid', 'unwrap']
