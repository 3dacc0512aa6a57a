"""Async database handling shared by every service: SQLite (embedded) and PostgreSQL/PostGIS.

Each service declares its own ``Base`` (a ``DeclarativeBase``) and adds the platform tables
(outbox, inbox, idempotency keys, leases) to its metadata with :class:`PlatformTables`, so they
live in the service's own database and commit in the same transactions as its domain rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import shapely

# Imported eagerly: importing geoalchemy2 registers its DDL listeners, and registering them in
# the middle of a create_all (a lazy import) leaves the table half-processed.
from geoalchemy2 import Geometry as PostGISGeometry
from geoalchemy2.shape import from_shape, to_shape
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    event,
    false,
    or_,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for long-lived tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# The largest whole numbers an INTEGER and a BIGINT column hold on every supported database:
# the bound of any number a request may send that is stored or compared in a query.
INT_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1
# Execution option marking a read-only connection (see Database.reader).
READ_ONLY = "gridgov_read_only"


def region_filter(column: Any, prefixes: list[str] | None) -> Any:
    """A WHERE clause keeping rows whose region code starts with one of ``prefixes``.

    ``None`` means unrestricted (``Principal.visible_prefixes`` of a caller with scope ``*``);
    an empty list matches nothing.
    """
    if prefixes is None:
        return true()
    if not prefixes:
        return false()
    return or_(*[column.startswith(p, autoescape=True) for p in prefixes])


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Geometry(TypeDecorator[Any]):
    """A shapely geometry in WGS-84: PostGIS ``geometry(…, 4326)`` on PostgreSQL, WKB on SQLite.

    One model and one code path serve both backends; spatial queries on PostgreSQL can use
    PostGIS functions on the column, and hot lookups use the in-memory index anyway.
    """

    impl = LargeBinary
    cache_ok = True
    # Read by geoalchemy2's DDL hooks on PostgreSQL; GiST indexes are declared explicitly.
    srid = 4326
    dimension = 2
    spatial_index = False
    use_N_D_index = False
    management = False

    def __init__(self, geometry_type: str = "GEOMETRY") -> None:
        super().__init__()
        self.geometry_type = geometry_type

    def __repr__(self) -> str:
        # How Alembic autogenerate writes the type into a migration.
        return f"Geometry({self.geometry_type!r})"

    def load_dialect_impl(self, dialect: Dialect | None) -> Any:
        # geoalchemy2's DDL hooks sometimes ask without a dialect; PostGIS is the spatial one.
        if dialect is None:
            return PostGISGeometry(geometry_type=self.geometry_type, srid=4326, spatial_index=False)
        if dialect.name == "postgresql":
            return dialect.type_descriptor(
                PostGISGeometry(geometry_type=self.geometry_type, srid=4326, spatial_index=False)
            )
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return from_shape(value, srid=4326)
        return shapely.to_wkb(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return to_shape(value)
        return shapely.from_wkb(value)


def gist_index(name: str, column: str) -> Index:
    """A GiST index on PostgreSQL; SQLite has no spatial index and does not need one here."""
    return Index(name, column, postgresql_using="gist").ddl_if(dialect="postgresql")


class PlatformTables:
    """Tables every service keeps for the shared mechanisms."""

    def __init__(self, metadata: MetaData) -> None:
        self.outbox = Table(
            "outbox",
            metadata,
            Column("id", BigId, primary_key=True, autoincrement=True),
            Column("event_id", String(64), nullable=False, unique=True),
            Column("topic", String(200), nullable=False),
            Column("key", String(200), nullable=False),
            Column("body", Text, nullable=False),
            Column("created_at", UTCDateTime, nullable=False, default=utcnow),
            Column("sent_at", UTCDateTime, nullable=True),
            Index(
                "ix_outbox_unsent",
                "id",
                postgresql_where=text("sent_at IS NULL"),
                sqlite_where=text("sent_at IS NULL"),
            ),
        )
        self.inbox = Table(
            "inbox",
            metadata,
            Column("event_id", String(64), primary_key=True),
            Column("topic", String(200), nullable=False),
            Column("type", String(200), nullable=False),
            Column("processed_at", UTCDateTime, nullable=False, default=utcnow),
        )
        self.idempotency = Table(
            "idempotency_keys",
            metadata,
            Column("principal", String(200), primary_key=True),
            Column("key", String(255), primary_key=True),
            Column("request_hash", String(64), nullable=False),
            Column("started_at", UTCDateTime, nullable=False),
            Column("status_code", Integer, nullable=True),
            Column("content_type", String(200), nullable=True),
            Column("location", String(500), nullable=True),
            Column("body", LargeBinary, nullable=True),
        )
        self.leases = Table(
            "leases",
            metadata,
            Column("name", String(100), primary_key=True),
            Column("holder", String(100), nullable=False),
            Column("expires_at", UTCDateTime, nullable=False),
        )


class Database:
    """Engine and session factory for one service's database."""

    def __init__(self, url: str, metadata: MetaData, *, pool_size: int = 10) -> None:
        self.url = url
        self.metadata = metadata
        self.is_sqlite = url.startswith("sqlite")
        # hide_parameters: a failed statement's error (logged, and put on a DLQ message when a
        # consumer fails) names the SQL but not the values: names, phone numbers, ID indexes.
        kwargs: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite, "hide_parameters": True}
        if not self.is_sqlite:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)

        # A session class of our own, so commit hooks stay with this database only.
        class _Session(Session):
            pass

        self._commit_hooks: list[Callable[[Session], None]] = []
        event.listen(_Session, "after_commit", self._after_commit)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=_Session
        )

    def on_commit(self, hook: Callable[[Session], None]) -> None:
        self._commit_hooks.append(hook)

    def _after_commit(self, session: Session) -> None:
        # after_commit also fires when a SAVEPOINT is released; only the outermost commit
        # makes rows visible to other connections.
        root = session.get_transaction()
        if root is not None and root.is_active:
            return
        for hook in self._commit_hooks:
            hook(session)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: on SQLite its transaction does not take the write lock,
        so it neither waits for the writer nor makes the writer wait (WAL snapshot)."""
        async with self.sessions() as session:
            await session.connection(execution_options={READ_ONLY: True})
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any exception."""
        async with self.sessions() as session, session.begin():
            yield session

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            await conn.run_sync(self.metadata.create_all)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy control transactions; WAL lets readers run beside the single writer.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: two deferred transactions that both
        # upgrade to writing would otherwise fail with "database is locked" instead of waiting.
        # A reader never upgrades, so it begins deferred and leaves the lock to the writers.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
