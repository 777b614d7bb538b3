from .builders import ImportedModel, MMPretrainClassifier, TappableClassifier, TimmClassifier, build_model
from .distill_model import DistillModel
from .weights import load_weights, read_state_dict

__all__ = ['DistillModel', 'ImportedModel', 'MMPretrainClassifier', 'TappableClassifier', 'TimmClassifier',
           'build_model', 'load_weights', 'read_state_dict']
