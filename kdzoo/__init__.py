"""kdzoo: knowledge distillation across architectures, on mmengine.

Importing the package registers every model, distiller, adapter, dataset, transform, metric and hook.
"""
__version__ = '0.1.0'

import warnings

# mmcv-lite has no compiled ops; mmpretrain's import of mmcv.cnn warns about one kdzoo never uses.
warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')

from .utils import compat  # noqa: F401  (mmengine fixes for current torch; must run before any Runner)
from .utils import moved
moved.install()   # old import paths of moved modules (kdzoo/utils/moved.py)
from . import models, distillers, adapters, datasets, engine, methods  # noqa: F401,E402
from . import face  # noqa: F401,E402  (the face-recognition vertical: registers its models, data, metrics, methods)
