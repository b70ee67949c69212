"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class QusrError(Exception):
    """Base class: the message is complete and meant for the user, no traceback needed."""

    exit_code = 1


class InputError(QusrError):
    """The input image or output path cannot be used."""

    exit_code = 2


class WeightsError(QusrError):
    """A checkpoint is missing, corrupt, mismatched or fails its sha256 check."""

    exit_code = 3
