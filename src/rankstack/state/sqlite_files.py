"""The files of an open SQLite database (``X``, ``X-wal``, ``X-shm``): are they still the ones we write to?"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rankstack.state.shared import StateStoreError


class DatabaseFiles:
    """Remembers the identity (device, inode) of the database file and its companions once opened, and the largest
    size of the shared-memory file; ``check`` raises ``StateStoreError`` when the paths on disk no longer match."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shm = Path(f"{path}-shm")
        self.wal = Path(f"{path}-wal")
        self._opened: dict[Path, tuple[int, int]] = {}
        self._shm_size = 0

    def _error(self, what: str) -> StateStoreError:
        """The error for a problem with one of the files, naming the database."""
        return StateStoreError(f"SQLite state store {self.path}: {what}")

    def check_companions(self) -> None:
        """Before opening: an existing ``-wal`` / ``-shm`` file must be a regular file this process can write."""
        for path in (self.wal, self.shm):
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(mode):
                raise self._error(f"{path} is not a regular file")
            try:
                os.close(os.open(path, os.O_RDWR))
            except OSError as exc:
                raise self._error(
                    f"{path} cannot be opened for writing ({exc.strerror}): SQLite would refuse every write or stop "
                    "the process with SIGBUS; give this user write access to it, or delete it while no process "
                    "has the database open") from None

    def remember(self) -> None:
        """Record the files as they are now (after a first write created the companions)."""
        for path in (self.path, self.wal, self.shm):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            self._opened[path] = (st.st_dev, st.st_ino)
            if path == self.shm:
                self._shm_size = st.st_size

    def check(self) -> None:
        """Raise unless every remembered file is still at its path, the same file, and ``-shm`` not truncated."""
        for path, identity in self._opened.items():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise self._error(f"{path} was deleted while the service had it open: writes would go to a file no "
                                  "restart can find; restart the service") from None
            if (st.st_dev, st.st_ino) != identity:
                raise self._error(f"{path} was replaced by another file while the service had it open: writes would "
                                  "go to the old one; restart the service")
            if path == self.shm:
                if st.st_size < self._shm_size:
                    raise self._error(f"{path} was truncated from {self._shm_size} to {st.st_size} bytes while in "
                                      "use (its next access would stop the process with SIGBUS); restart the service")
                self._shm_size = st.st_size

    def restore_shm_size(self) -> None:
        """Extend a truncated ``-shm`` file (still ours) back to its size with zeros, which SQLite reads as "rebuild
        the index from the WAL", so that touching the mapping (closing the connection) does not raise SIGBUS."""
        identity = self._opened.get(self.shm)
        try:
            st = os.stat(self.shm)
            if identity == (st.st_dev, st.st_ino) and st.st_size < self._shm_size:
                os.truncate(self.shm, self._shm_size)
        except OSError:
            pass
