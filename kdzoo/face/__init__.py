"""Face recognition, one vertical on kdzoo's core: backbones and margin heads (``models``), RecordIO, image
folder, verification .bin and IJB data (``datasets``), verification and IJB metrics (``evaluation``), its
methods (``methods``: URFM + APT, face KD) and the task that trains and evaluates face recognisers (``task``).

The core (``kdzoo.models``, ``kdzoo.distillers``, ``kdzoo.engine``, ``kdzoo.taps``) never imports this
package; ``import kdzoo`` does, which registers everything here in kdzoo's registries.
"""
from . import datasets, evaluation, methods, models  # noqa: F401
