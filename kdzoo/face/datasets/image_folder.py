"""Scan an ImageFolder-style face set: one sub-folder per identity (docs/face_reference.md §1).

Identities and the images inside each are sorted by name, as torchvision's ``ImageFolder`` (used by
insightface's ImageFolder loader) sorts them, so class indices agree with it.
"""
import os

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.pgm', '.ppm', '.tif', '.tiff', '.webp')


def list_identity_folders(root):
    """Sorted names of the sub-folders of ``root`` (hidden ones excluded)."""
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith('.'))


def list_images(folder, extensions=IMAGE_EXTENSIONS, sort_key=None):
    """Sorted file names in ``folder`` whose extension (case-insensitive) is in ``extensions``."""
    names = [entry.name for entry in os.scandir(folder)
             if entry.is_file() and os.path.splitext(entry.name)[1].lower() in extensions]
    return sorted(names, key=sort_key)


def scan_identity_folders(root, extensions=IMAGE_EXTENSIONS, identities=None, sort_key=None):
    """``[(identity_name, [image_path, ...]), ...]`` for each identity folder under ``root``.

    Args:
        identities: the folder names to use, in this order; default every sub-folder, sorted.
        sort_key: key for ordering images inside a folder (default: by name).
    """
    names = list_identity_folders(root) if identities is None else list(identities)
    scanned = []
    for name in names:
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'identity folder {folder} does not exist')
        scanned.append((name, [os.path.join(folder, image) for image in list_images(folder, extensions, sort_key)]))
    return scanned
