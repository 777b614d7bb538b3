from .builders import ImportedModel, MMPretrainClassifier, TappableClassifier, TimmClassifier, build_model
from .distill_model import DistillModel
from .weights import load_state, load_weights, read_state_dict
from . import face  # noqa: F401

__all__ = ['DistillModel', 'ImportedModel', 'MMPretrainClassifier', 'TappableClassifier', 'TimmClassifier',
           'build_model', 'load_state', 'load_weights', 'read_state_dict']
