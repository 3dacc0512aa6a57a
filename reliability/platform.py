"""The platform under test: a Tansu broker, the four services as uvicorn processes on free
loopback ports, their databases, and a small filesystem for photos.

Nothing here uses the fixed ports of ``gridgov run`` (8100-8104, 9092): every port is free
at the moment it is chosen, so the suite can run beside a developer's ``make run``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from gridgov_common.embedded import Broker, UvicornProcess, free_port, wait_for_port

SERVICES = {
    "grid-svc": "gridgov_grid.main:app",
    "inspection-svc": "gridgov_inspection.main:app",
    "population-svc": "gridgov_population.main:app",
    "notify-svc": "gridgov_notify.main:app",
}
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PHOTO_FS_BYTES = 64 * 1024 * 1024


class Service(UvicornProcess):
    """One of the four services, under the name the tables print."""

    def __init__(
        self, name: str, target: str, port: int, env: dict[str, str], cwd: Path, log: Path
    ) -> None:
        super().__init__(target, port=port, env=env, cwd=cwd, log_path=log)
        self.name = name


class PrivatePostgres:
    """A PostgreSQL cluster of the suite's own (initdb in the work directory, a free port),
    so restarting it cannot disturb anyone else's database on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.log = root / "logs" / "postgres.log"

    def _as_postgres(self, *args: str) -> None:
        # initdb and postgres refuse to run as root; the Debian packages provide this user.
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["/usr/sbin/runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def init(self) -> None:
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.data, "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres")
        self._as_postgres(PG_BIN / "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust")
        self.start()
        for label in ("grid", "inspection", "population", "notify"):
            self._as_postgres(
                PG_BIN / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-qc", f"CREATE DATABASE {label}",
            )  # fmt: skip

    def url(self, label: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{label}"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._as_postgres(
            PG_BIN / "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start"
        )

    def crash(self) -> None:
        """``immediate`` mode: no checkpoint, the server recovers from its WAL on start."""
        self._as_postgres(PG_BIN / "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(PG_BIN / "pg_ctl", "-D", str(self.data), "-m", "fast", "stop")


@dataclass
class Platform:
    root: Path
    database: str  # "sqlite" or "postgres"
    broker: Broker = field(init=False)
    services: dict[str, Service] = field(default_factory=dict)
    postgres: PrivatePostgres | None = None
    photo_dir: Path = field(init=False)
    photo_fs_mounted: bool = False

    def start(self) -> None:
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.broker = Broker(free_port(), log_path=logs / "broker.log").start()
        if self.database == "postgres":
            self.postgres = PrivatePostgres(self.root)
            self.postgres.init()
        self._mount_photo_fs()
        ports = {name: free_port() for name in SERVICES}
        for name, target in SERVICES.items():
            label = name.removesuffix("-svc")
            env = {
                **os.environ,
                "GRIDGOV_DATABASE_URL": self.postgres.url(label)
                if self.postgres
                else f"sqlite+aiosqlite:///{self.root / (label + '.db')}",
                "GRIDGOV_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
                "GRIDGOV_GRID_SVC_URL": f"http://127.0.0.1:{ports['grid-svc']}",
                "GRIDGOV_OUTBOX_POLL_SECONDS": "0.2",
                "GRIDGOV_LOG_JSON": "false",
                "GRIDGOV_PHOTO_DIR": str(self.photo_dir),
                # Retries paced for a run of minutes, not the production day.
                "GRIDGOV_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
                "GRIDGOV_WEBHOOK_RETRY_MAX_SECONDS": "5",
                "GRIDGOV_WEBHOOK_TIMEOUT_SECONDS": "5",
                "GRIDGOV_DELIVERY_CLAIM_SECONDS": "15",
            }
            self.services[name] = Service(
                name, target, ports[name], env, self.root, logs / f"{name}.log"
            )
        for svc in self.services.values():
            svc.start()
        for svc in self.services.values():
            svc.wait_ready()

    def _mount_photo_fs(self) -> None:
        """Photos go to a tmpfs of a fixed size, so 'the disk is full' can be made true."""
        self.photo_dir = self.root / "photos"
        self.photo_dir.mkdir()
        if os.geteuid() != 0:
            return
        done = subprocess.run(
            [
                "/usr/bin/mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={PHOTO_FS_BYTES}",
                "tmpfs",
                str(self.photo_dir),
            ],
            capture_output=True,
        )
        self.photo_fs_mounted = done.returncode == 0

    def fill_photo_fs(self) -> int:
        """Write a filler file until the photo filesystem has no space left; its size."""
        written = 0
        fd = os.open(self.photo_dir / ".filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            for size in (1 << 20, 1 << 12):  # megabytes, then the last few pages
                chunk = b"\0" * size
                with contextlib.suppress(OSError):
                    while True:
                        written += os.write(fd, chunk)
        finally:
            os.close(fd)
        return written

    def free_photo_fs(self) -> None:
        (self.photo_dir / ".filler").unlink(missing_ok=True)

    def restart_broker(self, down_seconds: float) -> None:
        self.broker.stop()
        time.sleep(down_seconds)
        self.broker.start()
        wait_for_port(self.broker.port)

    def stop(self) -> None:
        for svc in self.services.values():
            svc.stop()
        with contextlib.suppress(Exception):
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()
        if self.photo_fs_mounted:
            subprocess.run(["/usr/bin/umount", "-l", str(self.photo_dir)], check=False)
            self.photo_fs_mounted = False
