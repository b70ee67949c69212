"""Where a result came from: the git commit of the code that made it (training headers, bench reports)."""

from __future__ import annotations

import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def git_commit(folder: Path = PACKAGE_DIR) -> str | None:
    """HEAD of the repository holding ``folder``, marked "+uncommitted changes" when tracked files differ;
    None outside a repository or without git."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                              timeout=10, check=False)
        if done.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() + ("+uncommitted changes" if dirty else "")
