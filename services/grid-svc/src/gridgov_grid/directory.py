"""The in-memory view every replica serves lookups from: the hierarchy and a spatial index.

Built from the database at start, updated right after each local commit, and kept current
with changes made through other replicas by listening to ``grid.v1`` (see ``index_sync.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .geo import GridIndex


@dataclass(frozen=True)
class RegionInfo:
    code: str
    name: str
    level: str
    parent_code: str | None
    grid_class: str | None
    status: str
    version: int


class Directory:
    def __init__(self) -> None:
        self.regions: dict[str, RegionInfo] = {}
        self.index = GridIndex()
        # Per grid code, the encoded grid-and-ancestors part of a lookup answer (lookup.py).
        # Any change may rename a grid or one of its ancestors, so every change drops them all.
        self.answers: dict[str, bytes] = {}

    def load(self, items: list[tuple[RegionInfo, Any]]) -> None:
        self.answers = {}
        self.regions = {info.code: info for info, _ in items}
        self.index.replace_all(
            (info.code, boundary)
            for info, boundary in items
            if _locatable(info) and boundary is not None
        )

    def apply(self, info: RegionInfo, boundary: Any) -> None:
        """Take a region's new state; an older version than the one held is ignored."""
        known = self.regions.get(info.code)
        if known is not None and known.version > info.version:
            return
        self.answers = {}
        self.regions[info.code] = info
        if _locatable(info) and boundary is not None:
            self.index.upsert(info.code, boundary)
        else:
            self.index.remove(info.code)

    def ancestors(self, code: str) -> list[RegionInfo]:
        """District first, down to the parent of ``code``."""
        chain: list[RegionInfo] = []
        parent = self.regions[code].parent_code if code in self.regions else None
        while parent is not None and parent in self.regions:
            info = self.regions[parent]
            chain.append(info)
            parent = info.parent_code
        chain.reverse()
        return chain

    def locate(self, lon: float, lat: float) -> RegionInfo | None:
        code = self.index.locate(lon, lat)
        return self.regions.get(code) if code else None

    def locate_many(self, lons: list[float], lats: list[float]) -> list[RegionInfo | None]:
        return [self.regions.get(c) if c else None for c in self.index.locate_many(lons, lats)]


def _locatable(info: RegionInfo) -> bool:
    return info.level == "grid" and info.status == "active"
