"""`crossroads serve` as a subprocess, for tests of the process itself: signals, exit codes,
workers, what survives a kill."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


def serve_command(config_path: Path, data_dir: Path, workers: int = 1, port: int = 0) -> list[str]:
    return [
        sys.executable,
        "-m",
        "crossroads",
        "serve",
        "--config",
        str(config_path),
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]


class Served:
    """`crossroads serve` as a subprocess, started when the banner shows its address. Its
    output is read on a thread (kept in `output`), so a gateway that logs a lot never blocks
    on a full pipe."""

    def __init__(
        self,
        config_path: Path,
        data_dir: Path,
        workers: int = 1,
        port: int = 0,
        *,
        open_files: int | None = None,
    ) -> None:
        """`open_files`: the soft open-file limit it starts with (as a shell's `ulimit -Sn`
        would set it), instead of this process's."""

        def limit_open_files() -> None:
            if open_files is not None:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

        self.proc = subprocess.Popen(
            serve_command(config_path, data_dir, workers, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=limit_open_files,
        )
        self.output: list[str] = []
        self._banner = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not self._banner.wait(0.05):
            assert self.proc.poll() is None, f"gateway exited early: {''.join(self.output)}"
            assert time.monotonic() < deadline, "gateway did not start"

    def _read(self) -> None:
        """Reads until end of file, then closes the pipe: only here, since closing it from
        another thread would wait for this read, which lasts as long as any process holding
        the pipe's other end (a worker that outlived its supervisor) runs."""
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.output.append(line)
                match = re.search(r"serving on (http://[\d.]+:\d+)", line)
                if match and not self.url:
                    self.url = match.group(1)
                    self._banner.set()

    def wait(self, cap: float = 120) -> int:
        """The exit code, waiting as long as `cap` allows (a generous cap, not a deadline)."""
        return self.proc.wait(timeout=cap)

    def close(self) -> None:
        """Kills the process if it still runs (the pipe is closed by the reading thread)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
