"""Face verification (LFW-style .bin pairs) and IJB-B/C template metrics."""
from . import ijb, verification  # noqa: F401
