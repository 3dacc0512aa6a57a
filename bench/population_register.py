"""population-svc: registrations per second, duplicate-check p99 and blind-index lookup p99.

    .venv/bin/python -m bench.population_register [--persons 1000000] [--requests 3000]
                                                  [--seconds 30] [--quick]

Prints one JSON object on stdout (progress on stderr). One run:

1. Preload: ``--persons`` synthetic persons (valid GB 11643 numbers, homophone-rich names,
   encrypted numbers, keyed blind indexes, pinyin blocking keys — the same code paths the
   service uses) are bulk-inserted into population-svc's SQLite schema. Bulk loading is not
   what is measured; it only builds the population the measurements run against.
2. In-process, against that database through the service's own modules:
   * duplicate check: ``duplicates.find_candidates`` + reasons for 2,000 new records, half of
     them sharing a name pinyin and birth date with an existing person (target p99 <= 20 ms);
   * ID lookup: HMAC blind index + indexed equality query for 2,000 existing numbers.
3. Through the API: population-svc as a uvicorn process (same options as every benchmark) on
   that database with a Tansu broker; ``POST /v1/persons`` (validation, encryption, blind
   index, pinyin keys and duplicate check in one transaction) over 16 keep-alive connections,
   closed loop, bounded by ``--requests`` and ``--seconds``; every request is a new person.
   Baseline in the same run: ``GET /healthz`` of the same process.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.harness import (
    UvicornProcess,
    emit,
    http_get,
    http_load,
    latency_summary,
    log,
    run,
    terminate_on_sigterm,
)
from gridgov_common.auth import issue_token
from gridgov_common.db import Database
from gridgov_common.settings import ServiceSettings
from gridgov_common.testing import Broker
from gridgov_population import duplicates
from gridgov_population.citizen_id import check_char
from gridgov_population.models import Base, Person
from gridgov_population.names import name_pinyin, pinyin_match_keys
from gridgov_population.pii import mask_citizen_id, mask_phone
from gridgov_population.settings import Settings

CONCURRENCY = 16
SAMPLES = 2_000
TARGET_DUP_P99_MS = 20.0
OFFICER = issue_token(
    ServiceSettings(), subject="bench-officer", roles=["population_officer"], scopes=["*"]
)

REGIONS = [
    "110101", "120101", "130102", "210102", "310101", "320102", "330102", "340102", "350102",
    "360102", "370102", "410102", "420102", "430102", "440103", "440306", "450102", "500101",
    "510104", "520102", "530102", "610102", "620102", "640104", "650102",
]  # fmt: skip
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曾彭单解萧蔡潘田董袁"
GIVEN = "伟玮炜芳方娜静敏丽强磊军洋勇艳杰涛明鸣超秀霞平刚桂英华辉鑫宇浩然子轩梓涵欣怡晨阳"


class Synthetic:
    """Deterministic synthetic persons (seeded), with valid ID check characters."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()

    def person(self) -> dict[str, Any]:
        rng = self.rng
        while True:
            region = rng.choice(REGIONS)
            birth = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 60))
            seq = rng.randrange(1000)
            first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
            if first17 not in self.used:
                self.used.add(first17)
                break
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        return {
            "number": first17 + check_char(first17),
            "name": name,
            "birth_date": birth,
            "sex": "male" if seq % 2 else "female",
            "region": region,
            "phone": f"1{rng.choice('3578')}{rng.randrange(10**9):09d}",
        }


def preload(db_path: Path, n: int, settings: Settings, gen: Synthetic) -> list[dict[str, Any]]:
    """Bulk-insert ``n`` persons; returns a sample of them for the lookups."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    cipher, bidx = settings.cipher, settings.blind_index
    sample: list[dict[str, Any]] = []
    rate = min(1.0, 3.0 * SAMPLES / max(n, 1))
    batch = 20_000
    started = time.monotonic()
    for done in range(0, n, batch):
        persons, keys = [], []
        for _ in range(min(batch, n - done)):
            p = gen.person()
            pid = uuid.uuid4().hex
            persons.append(
                (
                    pid, "440306001001001", p["name"], name_pinyin(p["name"]), p["sex"],
                    p["birth_date"].isoformat(), "citizen_id", "CHN",
                    cipher.encrypt(p["number"], f"person:{pid}.id_number"),
                    bidx.index("citizen_id", p["number"]), mask_citizen_id(p["number"]),
                    cipher.encrypt(p["phone"], f"person:{pid}.phone"),
                    bidx.index("phone", p["phone"]), mask_phone(p["phone"]),
                    p["region"], "[]", "active", 1,
                    "2026-01-01 00:00:00.000000", "2026-01-01 00:00:00.000000",
                )
            )  # fmt: skip
            for key in pinyin_match_keys(p["name"]):
                keys.append((pid, key, p["birth_date"].isoformat()))
            if len(sample) < SAMPLES * 2 and gen.rng.random() < rate:
                sample.append(p)
        conn.executemany(
            "INSERT INTO persons (id, region_code, name, name_pinyin, sex, birth_date, "
            "document_type, nationality, id_enc, id_bidx, id_masked, phone_enc, phone_bidx, "
            "phone_masked, household_region_code, flags, status, facts_version, created_at, "
            "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            persons,
        )
        conn.executemany(
            "INSERT INTO person_name_keys (person_id, key, birth_date) VALUES (?,?,?)", keys
        )
        conn.commit()
        if (done // batch) % 10 == 0:
            log(f"preloaded {done + len(persons):,} persons ({time.monotonic() - started:.0f}s)")
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    return sample


async def measure_in_process(
    url: str, settings: Settings, sample: list[dict[str, Any]], gen: Synthetic
) -> dict[str, Any]:
    db = Database(url, Base.metadata)
    lookups: list[float] = []
    checks: list[float] = []
    found = 0
    candidates = 0
    try:
        async with db.sessions() as session:
            for p in sample[:SAMPLES]:
                t0 = time.perf_counter()
                key = settings.blind_index.index("citizen_id", p["number"])
                row = await session.scalar(select_id(key))
                lookups.append(time.perf_counter() - t0)
                found += row is not None
            for i in range(SAMPLES):
                new = gen.person()
                if i % 2 == 0 and sample:
                    # A homophone twin of an existing person: same birth date, same pinyin.
                    twin = sample[i % len(sample)]
                    new["birth_date"] = twin["birth_date"]
                    new["name"] = twin["name"]
                person = Person(
                    id=uuid.uuid4().hex,
                    region_code="440306001001001",
                    name=new["name"],
                    birth_date=new["birth_date"],
                    id_bidx=settings.blind_index.index("citizen_id", new["number"]),
                    household_region_code=new["region"],
                )
                t0 = time.perf_counter()
                others = await duplicates.find_candidates(session, person)
                matched = [o for o in others if duplicates.reasons_for(person, o)]
                checks.append(time.perf_counter() - t0)
                candidates += len(matched)
    finally:
        await db.dispose()
    return {
        "blind_index_lookup": {
            "samples": len(lookups),
            "found": found,
            "latency_ms": latency_summary(lookups),
        },
        "duplicate_check": {
            "samples": len(checks),
            "with_twin": SAMPLES // 2,
            "candidates_found": candidates,
            "latency_ms": latency_summary(checks),
        },
    }


def select_id(key: str) -> Any:
    from sqlalchemy import select

    return select(Person.id).where(Person.id_bidx == key).limit(1)


class Registrations(Sequence[bytes]):
    """Raw ``POST /v1/persons`` requests, a new synthetic person each."""

    def __init__(self, port: int, gen: Synthetic) -> None:
        self.port = port
        self.gen = gen

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, i: Any) -> Any:
        p = self.gen.person()
        body = json.dumps(
            {
                "region_code": "440306001001",
                "name": p["name"],
                "id_number": p["number"],
                "sex": p["sex"],
                "phone": p["phone"],
                "household_region_code": p["region"],
            },
            ensure_ascii=False,
        ).encode()
        head = (
            f"POST /v1/persons HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {OFFICER}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head + body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="20,000 persons, 500 requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.persons, args.requests, args.seconds = 20_000, 500, 10.0
    terminate_on_sigterm()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-population-") as tmp:
        tmpdir = Path(tmp)
        db_path = tmpdir / "population.db"
        url = f"sqlite+aiosqlite:///{db_path}"

        async def create() -> None:
            db = Database(url, Base.metadata)
            await db.create_schema()
            await db.dispose()

        run(create())
        gen = Synthetic(seed=11643)
        t0 = time.monotonic()
        sample = preload(db_path, args.persons, settings, gen)
        preload_s = time.monotonic() - t0
        log(f"preload done: {args.persons:,} persons in {preload_s:.0f}s")
        in_process = run(measure_in_process(url, settings, sample, gen))
        log("in-process measurements done")
        broker = Broker(log_path=tmpdir / "tansu.log", partitions=1).start()
        try:
            env = {
                "GRIDGOV_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "GRIDGOV_LOG_LEVEL": "WARNING",
                "GRIDGOV_TOPIC_PARTITIONS": "1",
                "GRIDGOV_DATABASE_URL": url,
                # One token stands for many desks: a write budget no run reaches, so the
                # limiter is on the measured path but never refuses.
                "GRIDGOV_RATE_LIMIT_WRITES": "100000000",
            }
            with UvicornProcess(
                "gridgov_population.main:app", log_path=tmpdir / "population.log", env=env
            ) as pop:
                requests = Registrations(pop.port, gen)
                run(http_load(pop.port, requests, concurrency=CONCURRENCY, max_requests=50))
                api = run(
                    http_load(
                        pop.port,
                        requests,
                        concurrency=CONCURRENCY,
                        max_requests=args.requests,
                        max_seconds=args.seconds,
                    )
                )
                baseline = run(
                    http_load(
                        pop.port,
                        [http_get("/healthz", pop.port)],
                        concurrency=CONCURRENCY,
                        max_requests=3000,
                        max_seconds=10,
                    )
                )
        finally:
            broker.stop()
    dup_p99 = in_process["duplicate_check"]["latency_ms"].get("p99")
    emit(
        {
            "benchmark": "population_register",
            "persons": args.persons,
            "scaled_down": args.persons < 1_000_000,
            "preload_seconds": preload_s,
            "registrations_per_s": api.requests_per_s,
            "registration": api.summary(),
            "all_created": set(api.statuses) == {201},
            "baseline_healthz": baseline.summary(),
            **in_process,
            "targets": {
                "duplicate_check_p99_ms": {
                    "value": dup_p99,
                    "target": f"<= {TARGET_DUP_P99_MS:g} ms",
                    "pass": None if dup_p99 is None else dup_p99 <= TARGET_DUP_P99_MS,
                }
            },
        }
    )


if __name__ == "__main__":
    main()
