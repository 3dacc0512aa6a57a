"""``gridgov`` command line: tokens for the embedded default, the embedded run, event schemas."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

from .auth import issue_token
from .settings import ServiceSettings


def _token(args: argparse.Namespace) -> int:
    settings = ServiceSettings()
    if settings.jwt_jwks_url:
        print(
            "GRIDGOV_JWT_JWKS_URL is set: tokens come from the identity provider there",
            file=sys.stderr,
        )
        return 2
    print(
        issue_token(
            settings,
            subject=args.sub,
            roles=args.role,
            scopes=args.scope or ["*"],
            ttl=timedelta(hours=args.hours),
            department_id=args.department,
        )
    )
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from .events import json_schemas

    schemas = json_schemas()
    if args.out is None:
        print(json.dumps(schemas, indent=2, ensure_ascii=False))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        (out / f"{name}.schema.json").write_text(
            json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        )
    print(f"wrote {len(schemas)} schemas to {out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .devrun import run

    return run(demo=not args.no_demo)


def _migrate(args: argparse.Namespace) -> int:
    from .migrations import upgrade

    upgrade(args.service, args.revision)
    return 0


def _revision(args: argparse.Namespace) -> int:
    from .migrations import new_revision

    new_revision(args.service, args.message)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridgov", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    token = sub.add_parser("token", help="issue a signed token for the embedded default")
    token.add_argument(
        "--role",
        action="append",
        required=True,
        help="a role (repeatable), e.g. inspector, grid_admin, admin",
    )
    token.add_argument(
        "--scope",
        action="append",
        help="a region-code prefix (repeatable); default '*' (everywhere)",
    )
    token.add_argument("--sub", default="dev-user", help="subject (user id)")
    token.add_argument("--department", help="department id, for department users")
    token.add_argument("--hours", type=float, default=12.0, help="lifetime in hours")
    token.set_defaults(func=_token)

    events = sub.add_parser("events", help="event catalogue")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    schemas = events_sub.add_parser("schemas", help="print or write the JSON Schemas")
    schemas.add_argument("--out", help="directory to write <type>.schema.json files into")
    schemas.set_defaults(func=_schemas)

    run = sub.add_parser("run", help="start the broker and the four services (embedded)")
    run.add_argument("--no-demo", action="store_true", help="do not load demo data")
    run.set_defaults(func=_run)

    migrate = sub.add_parser("migrate", help="run a service's Alembic migrations")
    migrate.add_argument("service", choices=["grid", "inspection", "population", "notify"])
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(func=_migrate)

    revision = sub.add_parser("revision", help="autogenerate a service's next migration")
    revision.add_argument("service", choices=["grid", "inspection", "population", "notify"])
    revision.add_argument("-m", "--message", required=True)
    revision.set_defaults(func=_revision)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
