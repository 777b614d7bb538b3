from .builders import ImportedModel, MMPretrainClassifier, TappableClassifier, TimmClassifier, build_model
from .distill_model import DistillModel
from .weights import load_state, load_weights, read_state_dict
from . import involution  # noqa: F401  (Involution, RedNet, rednet26/38/50/101/152)

__all__ = ['DistillModel', 'ImportedModel', 'MMPretrainClassifier', 'TappableClassifier', 'TimmClassifier',
           'build_model', 'load_state', 'load_weights', 'read_state_dict']
