from .cifar import CIFAR100  # noqa: F401
from .mnist import EmbeddedMNIST  # noqa: F401
from .replay import ReplayDataset  # noqa: F401
from .transforms import MultiViewGenerator  # noqa: F401
from . import imagenet  # noqa: F401
from . import image_folder  # noqa: F401
