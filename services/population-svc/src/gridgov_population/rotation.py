"""Key rotation of encrypted fields: re-encrypt every token not under the active key.

Deploy the new key first as active with the old ones still in ``GRIDGOV_PII_KEYS`` (new
writes use it, old tokens still decrypt), run the rotation, then drop the old key.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gridgov_common.app import ServiceContext

from .models import House, Permit, Person
from .settings import Settings

# (model, column, associated-data template)
FIELDS: list[tuple[Any, str, str]] = [
    (Person, "id_enc", "person:{id}.id_number"),
    (Person, "phone_enc", "person:{id}.phone"),
    (House, "owner_id_enc", "house:{id}.owner_id"),
    (House, "owner_phone_enc", "house:{id}.owner_phone"),
    (Permit, "id_enc", "permit:{id}.id_number"),
]


async def rotate(ctx: ServiceContext, batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt in batches (one transaction each); returns tokens rotated per field."""
    settings: Settings = ctx.settings  # type: ignore[assignment]
    cipher = settings.cipher
    counts: dict[str, int] = {}
    for model, column, template in FIELDS:
        name = f"{model.__tablename__}.{column}"
        counts[name] = 0
        last = ""
        while True:
            async with ctx.db.transaction() as session:
                rows = (
                    await session.scalars(
                        select(model)
                        .where(model.id > last, getattr(model, column).is_not(None))
                        .order_by(model.id)
                        .limit(batch_size)
                    )
                ).all()
                for row in rows:
                    token = getattr(row, column)
                    if cipher.needs_rotation(token):
                        aad = template.format(id=row.id)
                        setattr(row, column, cipher.rotate(token, aad))
                        counts[name] += 1
            if len(rows) < batch_size:
                break
            last = rows[-1].id
    return counts
