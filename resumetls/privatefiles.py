"""
Files that hold secrets (ticket keys, client sessions, private keys): one
atomic write that leaves them private, and one check that refuses them when
group or others can reach them, with the C{chmod} that fixes it.

The write is what a crash must not break: the data goes to a temporary file
in the same directory (same file system, so the rename is atomic), created
with the final mode (never readable by others, not even for a moment),
flushed and fsynced, renamed over the target, and the directory fsynced so
the rename itself survives a crash.  A reader sees the old file or the new
one, never a half-written one.
"""

from __future__ import annotations

import os
import stat
import tempfile

#: The mode of a private file: owner read and write only.
PRIVATE_MODE = 0o600


def write_atomically(
    path: str, data: bytes, mode: int = PRIVATE_MODE, prefix: str = ".resumetls-"
) -> os.stat_result:
    """
    Replace C{path} with C{data}, atomically, with C{mode} (0600 by default).

    @param prefix: the name prefix of the temporary file beside C{path}.
    @return: the C{fstat} of the file written (what C{path} now is), so a
        caller can recognise its own file later.
    @raise OSError: when it cannot be written; C{path} is then unchanged and
        no temporary file is left behind.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            written = os.fstat(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)
    return written


def _fsync_directory(directory: str) -> None:
    """Make a rename in C{directory} durable, where the platform allows it."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def is_private(mode: int) -> bool:
    """Whether a file mode gives group and others no access at all."""
    return not mode & 0o077


def mode_problem(path: str, mode: int, secret: str) -> str | None:
    """
    Why a secret file's mode is refused, with the command that fixes it, or
    L{None} when it is private.

    @param mode: the file's C{st_mode}.
    @param secret: what the file holds, as the end of a sentence, for
        example C{"ticket keys are secrets"}.
    """
    if is_private(mode):
        return None
    what = "readable" if mode & 0o044 else "writable"
    return (
        f"{path} is {what} by group or others (mode {stat.S_IMODE(mode):04o}); "
        f"{secret}: run `chmod 600 {path}`"
    )
