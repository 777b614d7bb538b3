from . import face_verification, ijb  # noqa: F401
