"""course_lib: the reference implementations behind the image-generation course.

Importing the package does nothing but define names: no device probing, downloads or file writes, and no torch
until a name that needs it is used (so `python -m course_lib --help` answers at once).
Chapters live in submodules (`course_lib.gan`, `course_lib.diffusion`, `course_lib.style`, ...); the command
line lives apart from them, in `course_lib.commands`.
"""
__version__ = "0.1.0"

__all__ = ["__version__", "get_device", "get_profile", "seed_everything"]

_FROM_RUNTIME = ("get_device", "get_profile", "seed_everything")


def __getattr__(name: str):
    """`course_lib.get_device` and friends, read from course_lib.runtime when first asked for (PEP 562)."""
    if name in _FROM_RUNTIME:
        from . import runtime
        return getattr(runtime, name)
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
