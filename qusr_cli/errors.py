"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_failure(exc: BaseException) -> str:
    """One line: a QusrError's own message; anything else is a bug in qusr or a library, named as such."""
    if isinstance(exc, QusrError):
        return first_line(exc)
    return f"unexpected {type(exc).__name__}: {first_line(exc)} (please report this)"


class QusrError(Exception):
    """Base class: the message is complete and meant for the user, no traceback needed."""

    exit_code = 1


class InputError(QusrError):
    """The input image or output path cannot be used."""

    exit_code = 2


class WeightsError(QusrError):
    """A checkpoint is missing, corrupt, mismatched or fails its sha256 check."""

    exit_code = 3


class FileFailed(QusrError):
    """One file's job failed (a runner outcome): its one-line reason, and the exit code of what caused it."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so that the same cleanup runs."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


_received: list[KeyboardInterrupt] = []


def raise_interrupt(interrupt: KeyboardInterrupt):
    """What qusr's SIGINT and SIGTERM handlers call. The interrupt is also remembered, because some
    libraries turn any exception into their own (transformers' lazy imports make a KeyboardInterrupt
    a ModuleNotFoundError); ``reraise_if_interrupted`` gets it back."""
    _received.append(interrupt)
    raise interrupt


def raise_pending_interrupt() -> None:
    """Raise a signal's interrupt that something swallowed (a bare ``except:`` in a library's import)."""
    if _received:
        raise _received[-1]


def reraise_if_interrupted(exc: BaseException) -> None:
    """Raise the interrupt behind ``exc`` if a signal arrived; call before handling an Exception as a failure."""
    if _received:
        raise _received[-1] from exc
