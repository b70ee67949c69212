"""GPU-machine runs only: its image has no imagecodecs, and training reads its 8-bit photos through Pillow."""


class PngError(Exception):
    pass


def png_decode(data):
    raise PngError("imagecodecs is not installed on this machine")
