"""Progress bars for file transfers on a terminal (tqdm): one per file, one for the job."""

from __future__ import annotations

import sys

from netassist.transfer.client import shown


class TransferProgress:
    """Drives the bars from the client's callbacks; shows nothing when stderr is no terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._job = None
        self._file = None
        self._file_name: str | None = None
        self._file_done = 0

    def total(self, size: int) -> None:
        """Add ``size`` bytes to the whole job (called once per remote name)."""
        if not self.enabled:
            return
        from tqdm import tqdm

        if self._job is None:
            self._job = tqdm(
                total=0,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="total",
                position=0,
                leave=True,
            )
        self._job.total += size
        self._job.refresh()

    def update(self, name: str, done: int, size: int) -> None:
        """Move the bars: ``done`` of ``size`` bytes of file ``name``."""
        if not self.enabled:
            return
        from tqdm import tqdm

        if name != self._file_name and done == size:
            # A file that arrived whole at once (the small files of a folder stream): a bar
            # of its own would only flicker; the job's bar moves.
            if self._job is not None:
                self._job.update(size)
            return
        if name != self._file_name:
            if self._file is not None:
                self._file.close()
            self._file = tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=shown(name)[-40:],
                position=1,
                leave=False,
            )
            self._file_name, self._file_done = name, 0
        step = done - self._file_done
        self._file_done = done
        self._file.update(step)
        if self._job is not None:
            self._job.update(step)

    def close(self) -> None:
        """Take the bars away before the summary line."""
        for bar in (self._file, self._job):
            if bar is not None:
                bar.close()
