"""Which image formats qusr reads and writes, decided without torch so the CLI can check paths first.

Pillow reads and writes PNG, JPEG, WebP, TIFF and BMP, and AVIF when it was built with libavif
(its wheels are). HEIC/HEIF comes from pillow-heif and JPEG XL from pillow-jxl-plugin, two
maintained Pillow plugins; a format whose plugin is not installed is simply not offered.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from qusr_cli.errors import InputError

# Looked up, not imported: `qusr --help` must not pay for Pillow and its codecs.
_AVIF = importlib.util.find_spec("PIL._avif") is not None  # the module behind PIL.features.check("avif")
_HEIF = importlib.util.find_spec("pillow_heif") is not None
_JXL = importlib.util.find_spec("pillow_jxl") is not None

#: Output extension (lower case) -> Pillow format name.
OUTPUT_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    **({".avif": "AVIF"} if _AVIF else {}),
    **({".heic": "HEIF", ".heif": "HEIF"} if _HEIF else {}),
    **({".jxl": "JXL"} if _JXL else {}),
}

#: What `qusr upscale` reads and `qusr batch` (and the bench) pick up from a folder: every format
#: qusr can write can also be read.
IMAGE_SUFFIXES = frozenset(OUTPUT_FORMATS)

ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "AVIF", "HEIF", "JXL"})
SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
METADATA_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "TIFF", "AVIF", "HEIF"})


_registered = False


def register_plugins() -> bool:
    """Teach Pillow the plugin formats; True if this call did it (False: done before, or none installed).

    Called only when a file needs them (a plugin extension, or a file Pillow alone cannot identify):
    importing pillow-heif costs a start-up that most runs do not need.
    """
    global _registered
    if _registered or not (_HEIF or _JXL):
        return False
    _registered = True
    if _HEIF:
        from pillow_heif import register_heif_opener

        register_heif_opener()
    if _JXL:
        import pillow_jxl  # noqa: F401  (registers JPEG XL with Pillow on import)
    return True


def needs_plugin(path: Path) -> bool:
    return OUTPUT_FORMATS.get(path.suffix.lower()) in ("HEIF", "JXL")


def output_format(path: Path) -> str:
    """The Pillow format ``path``'s extension asks for; an InputError when qusr cannot write it."""
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        known = ", ".join(OUTPUT_FORMATS)
        shown = f"extension '{path.suffix}'" if suffix else "no extension"
        raise InputError(f"{path}: cannot write a file with {shown}; use one of {known}")
    return OUTPUT_FORMATS[suffix]
