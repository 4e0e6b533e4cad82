"""course_lib: the reference implementations behind the image-generation course.

Importing the package does nothing but define names: no device probing, downloads or file writes.
Chapters live in submodules (`course_lib.gan`, `course_lib.diffusion`, `course_lib.style`, ...).
"""
__version__ = "0.1.0"

from .runtime import get_device, get_profile, seed_everything  # noqa: E402

__all__ = ["__version__", "get_device", "get_profile", "seed_everything"]
