"""Face recognition, one vertical on kdzoo's core: backbones and margin heads (``models``), RecordIO, image
folder, verification .bin and IJB data (``datasets``), verification and IJB metrics (``evaluation``), its
methods (``methods``: URFM + APT, face KD) and the task that trains and evaluates face recognisers (``task``).

The core (``kdzoo.models``, ``kdzoo.tasks``, ``kdzoo.distillers``, ``kdzoo.engine``, ``kdzoo.taps``, the tools'
``kdzoo.tools_support``) never imports this package (tests/test_layers.py checks it); ``import kdzoo`` does,
which registers everything here in kdzoo's registries: models, data, metrics, methods, the
``face_recognition`` task (``TASKS``) and the resolver of custom face configs' ``face_data`` entry
(``CONFIG_RESOLVERS``).
"""
from . import datasets, evaluation, methods, models, task  # noqa: F401
from .datasets import custom_config  # noqa: F401
