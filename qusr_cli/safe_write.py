"""Atomic file writes, and the temporary files they leave when a process is killed mid-write.

Every temporary file qusr creates is named ``.<name>.qusr-<pid>-<8 hex>.tmp`` in the folder of the
file it becomes. The pid says whose it is: a later run into the same folder removes the ones whose
process no longer exists (a SIGKILL or a power cut cannot clean up after itself), and leaves those of
a run still going alone. The name is cut so that it stays within the 255-byte limit of common file
systems, whatever the length of the final name.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from qusr_cli.errors import InputError

NAME_LIMIT = 255  # bytes per file name on ext4, XFS, btrfs, APFS and NTFS (in UTF-16 units there)
_TEMP_PATTERN = re.compile(r"^\..*\.qusr-(\d+)-[0-9a-f]{8}\.tmp$", re.DOTALL)
_unfinished: set[Path] = set()  # temp files being written now, for a signal handler that cannot unwind


def temp_path(path: Path) -> Path:
    """A fresh temporary name next to ``path``, ours by its pattern, at most NAME_LIMIT bytes long."""
    tail = f".qusr-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    room = NAME_LIMIT - 1 - len(tail.encode())
    # Cut by bytes, then drop a multi-byte character the cut may have split.
    head = path.name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return path.with_name(f".{head}{tail}")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**31  # another user's live process (or an absurd pid, which is nobody's)
    return True


def clean_stale_temp_files(folder: Path) -> list[Path]:
    """Remove our temporary files in ``folder`` whose process has ended; returns what was removed.

    Only this machine's processes can be checked, so on a folder shared by several machines a temp
    file of a run still going elsewhere would look stale: run one batch per output folder there.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_PATTERN.match(entry.name)
        if match is None or _process_exists(int(match.group(1))):
            continue
        with suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def atomic_write(path, write_fn: Callable[[BinaryIO], None]) -> None:
    """Create `path` from what `write_fn` writes to the binary file it is given.

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over `path`
    in one step. On any error or interruption the temporary file is removed and a file already at
    `path` keeps its old content; OSErrors (disk full, permission) become InputError.
    """
    path = Path(path)
    temp = temp_path(path)
    _unfinished.add(temp)
    try:
        # "x" creates exclusively, with the user's umask deciding the permissions the output
        # ends up with (mkstemp would force 0o600). Inside the try: an interruption between the
        # open and the write still removes the file.
        with open(temp, "xb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as e:
        _remove_quietly(temp)
        raise InputError(f"{path}: cannot write ({e.strerror or e})") from e
    except BaseException:
        _remove_quietly(temp)
        raise
    finally:
        _unfinished.discard(temp)
    _fsync_folder(path.parent)


def remove_unfinished_temp_files() -> None:
    """For a process about to end at once (os._exit): remove the temp files it is writing."""
    for temp in list(_unfinished):
        _remove_quietly(temp)


def make_folder(folder: Path, what: str = "output folder") -> None:
    """Create ``folder`` (and its parents) and check it takes new files, or raise a one-line InputError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe_writable(folder)
    except FileExistsError:
        raise InputError(f"{folder}: exists and is not a folder; choose another {what}") from None
    except OSError as e:
        raise InputError(f"{folder}: cannot use it as the {what} ({e.strerror or e})") from None


def probe_writable(folder: Path) -> None:
    """Create and remove one of our temporary files in ``folder``: raises OSError if it refuses."""
    temp = temp_path(folder / "probe")
    try:
        os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    finally:
        _remove_quietly(temp)


def _remove_quietly(path: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself survive a crash. Not every system can open or fsync a folder
    # (Windows, some network file systems); the file's own data is already on disk then.
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
