"""The data folder is private to the user spoonprint runs as: it holds customers' names,
phones and addresses, the logs of who printed what, and the dashboard's signing secret.

On POSIX every ``spoonprint`` process runs with a umask of 077, so that whatever it creates
(the database and SQLite's ``-wal`` and ``-shm`` files, logs and their rotations, tickets of the
virtual printer, the TLS key) is readable by its owner only: folders 0700, files 0600. A data
folder made by an older version is tightened when the server starts. On Windows, files take
the ACLs of the folder they are created in, which under the user's profile admit that user
(and administrators) only; nothing is changed there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def keep_private() -> None:
    """Everything this process creates from now on is for its owner only (POSIX)."""
    if os.name == "posix":
        os.umask(PRIVATE_UMASK)


def make_private(folder: Path) -> int:
    """Create ``folder`` if needed and take every permission of group and others off it and
    everything in it (symbolic links are not followed); how many entries were changed."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.name != "posix":
        return 0
    changed = 0
    for path in (folder, *folder.rglob("*")):
        try:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                path.chmod(stat.S_IMODE(mode) & 0o700)
                changed += 1
        except OSError:
            continue  # gone meanwhile, or not ours to change: the server still starts
    return changed


def shared_folder(folder: Path) -> None:
    """Create ``folder`` readable by others, for files meant for other programs (tickets
    written to a folder), whatever the process's umask."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    if os.name == "posix":
        folder.chmod(0o755)
