"""kdzoo: knowledge distillation across architectures, on mmengine.

Importing the package registers every model, distiller, adapter, dataset, transform, metric and hook.
"""
__version__ = '0.1.0'

from .utils import compat  # noqa: F401  (mmengine fixes for current torch; must run before any Runner)
from . import models, distillers, adapters, datasets, evaluation, engine  # noqa: F401,E402
