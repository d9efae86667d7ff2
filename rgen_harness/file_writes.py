"""How the project writes files: whole or not at all, and failures that name the path and the fix.

- `replacing(path)` yields a temporary path beside `path` (same folder, so the same disk); when
  the block ends without an error the temporary file replaces `path` in one `os.replace`, so a
  reader sees the old file or the new one, never half of one. On an error it is removed.
  `write_text` / `write_json` are the usual cases.
- `check_writable(folder, setting)` creates the folder and writes (then removes) a probe file in
  it, so an unusable location is found before hours of work, not after.
- `WriteFailed` is the one error for a write that failed: its message names the setting (when
  there is one), the path, the system's reason and the fix. Commands print it as one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class WriteFailed(OSError):
    """A file or folder that could not be written; the message says which and what to do."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message, self.errno = message, code

    def __str__(self) -> str:
        return self.message


def explain(error: OSError, path: str | Path, setting: str | None = None) -> WriteFailed:
    """A `WriteFailed` for `error` raised while writing `path`."""
    where = f"{setting}: " if setting else ""
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on that disk"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make it writable"
    elif error.errno in (errno.ENOTDIR, errno.EEXIST):
        fix = "a file stands where a folder is needed; move it away"
    else:
        fix = "check the path"
    other = f" or set {setting} to another folder" if setting else ""
    return WriteFailed(f"{where}cannot write {path}: {reason}; {fix}{other}.", error.errno)


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `path` atomically (see module doc)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text(path: str | Path, text: str, *, setting: str | None = None) -> None:
    """Write `text` (UTF-8) to `path` atomically; a failure raises `WriteFailed`."""
    try:
        with replacing(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except WriteFailed:
        raise
    except OSError as e:
        raise explain(e, path, setting) from None


def write_json(path: str | Path, data: Any, *, setting: str | None = None) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", setting=setting)


def check_writable(folder: str | Path, setting: str | None = None) -> Path:
    """Create `folder` and prove a file can be written in it; `WriteFailed` otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # a name of its own: runs started side by side check the same folders at once
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        try:
            os.write(handle, b"ok")
        finally:
            os.close(handle)
            os.unlink(probe)
    except OSError as e:
        raise explain(e, folder, setting) from None
    return folder
