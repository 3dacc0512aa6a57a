"""Bearer-JWT authentication and region-scoped authorisation.

A token carries ``sub``, ``roles`` and ``scopes`` (region-code prefixes the caller may see or
act on; ``"*"`` is the whole country). The embedded default verifies HS256 with a local key;
production verifies RS256 against an identity provider's JWKS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from starlette.types import Scope

from .errors import Problem
from .settings import ServiceSettings

ROLES = (
    "admin",
    "grid_admin",
    "inspector",
    "grid_member",
    "department",
    "registrar",
    "population_officer",
    "reviewer",
    "viewer",
    "service",
)
_KNOWN_ROLES = frozenset(ROLES)
ALL_REGIONS = "*"


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    scopes: tuple[str, ...]
    department_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def covers(self, region_code: str | None) -> bool:
        """True if the region (or anything under it) lies inside one of the caller's scopes."""
        if ALL_REGIONS in self.scopes:
            return True
        if not region_code:
            return False
        return any(region_code.startswith(scope) for scope in self.scopes)

    def ensure_covers(self, region_code: str | None) -> None:
        if not self.covers(region_code):
            raise Problem(
                403,
                "out-of-scope",
                f"region {region_code or '(none)'} is outside your scopes "
                f"({', '.join(self.scopes) or 'none'})",
            )

    def visible_prefixes(self, requested: str | None = None) -> list[str] | None:
        """Prefixes a list query should be restricted to; None means unrestricted."""
        if requested:
            if ALL_REGIONS in self.scopes or any(requested.startswith(s) for s in self.scopes):
                return [requested]
            narrower = [s for s in self.scopes if s.startswith(requested)]
            if not narrower:
                raise Problem(403, "out-of-scope", f"region {requested} is outside your scopes")
            return narrower
        return None if ALL_REGIONS in self.scopes else list(self.scopes)


class Authenticator:
    # A device sends the same token with every request until it expires; verifying its
    # signature once per token instead of once per request takes ~100 µs off every call.
    CACHE_SIZE = 10_000

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        self._verified: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires:
                return principal
            del self._verified[token]
        principal = await self._verify(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()  # crude but bounded; a cold cache only costs verification
        self._verified[token] = (principal, float(principal.claims["exp"]))
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            if self._jwks is not None:
                # PyJWKClient fetches and caches keys with blocking I/O.
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                key: Any = signing_key.key
                algorithms = ["RS256", "ES256"]
            else:
                key = self.settings.jwt_signing_key.get_secret_value()
                algorithms = ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "sub"]},
                leeway=30,
            )
        except jwt.ExpiredSignatureError as exc:
            raise _unauthorized("token has expired") from exc
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"token is invalid: {exc}") from exc
        roles = claims.get("roles", [])
        scopes = claims.get("scopes", [])
        if not isinstance(roles, list) or not isinstance(scopes, list):
            raise _unauthorized("token claims 'roles' and 'scopes' must be lists")
        # "Reads need any role" means one of the platform's roles: an identity provider also
        # issues tokens for this audience to people who hold none (checked here, once per
        # token, so routes that accept any role need no check of their own).
        if not _KNOWN_ROLES.intersection(str(r) for r in roles):
            raise Problem(
                403,
                "forbidden-role",
                f"the token carries none of the platform's roles ({', '.join(ROLES)})",
            )
        return Principal(
            subject=str(claims["sub"]),
            roles=frozenset(str(r) for r in roles),
            scopes=tuple(str(s) for s in scopes),
            department_id=claims.get("department_id"),
            claims=claims,
        )


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def issue_token(
    settings: ServiceSettings,
    *,
    subject: str,
    roles: Iterable[str],
    scopes: Iterable[str],
    ttl: timedelta = timedelta(hours=12),
    department_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """Sign a token with the local HS256 key (embedded default and tests only)."""
    now = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": sorted(set(roles)),
        "scopes": sorted(set(scopes)),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if department_id:
        claims["department_id"] = department_id
    return jwt.encode(claims, settings.jwt_signing_key.get_secret_value(), algorithm="HS256")


def service_token(settings: ServiceSettings) -> str:
    """The token a service presents when it calls another service.

    Production injects one from the identity provider (``GRIDGOV_SERVICE_TOKEN``); the
    embedded default signs a short-lived one with the local key.
    """
    configured = settings.service_token.get_secret_value()
    if configured:
        return configured
    return issue_token(
        settings,
        subject=settings.service_name,
        roles=["service"],
        scopes=[ALL_REGIONS],
        ttl=timedelta(hours=1),
    )


def _scope_bearer(scope: Scope) -> str | None:
    # Straight from the ASGI headers (names are lower-case there): building Starlette's
    # Headers for one header costs more than the cached token check that follows.
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode(errors="replace").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def bearer_token(request: Request) -> str:
    token = _scope_bearer(request.scope)
    if token is None:
        raise _unauthorized("missing bearer token (Authorization: Bearer <jwt>)")
    return token


async def scope_principal(scope: Scope) -> Principal | None:
    """The verified caller of a request seen by an ASGI middleware; None without a valid token
    (the route itself answers 401 for that)."""
    token = _scope_bearer(scope)
    if token is None:
        return None
    authenticator: Authenticator = scope["app"].state.authenticator
    try:
        return await authenticator.verify(token)
    except Problem:
        return None


async def current_principal(request: Request) -> Principal:
    # One dependency level, not two (the token read through a sub-dependency): each level
    # costs FastAPI several microseconds on every request. FastAPI already resolves this
    # once per request however many dependencies share it.
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.verify(bearer_token(request))


def require_roles(*roles: str) -> Callable[..., Any]:
    """Dependency: the caller must hold one of ``roles``; returns the principal."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has_role(*roles):
            raise Problem(
                403, "forbidden-role", f"this action needs one of the roles: {', '.join(roles)}"
            )
        return principal

    return dependency


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
