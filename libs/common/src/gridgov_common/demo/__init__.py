"""A deterministic demo city, loaded through the four services' public APIs only.

``plan()`` is pure (a seed, a scale and the day it is planned for give the same city every
time), so tests check its geometry and numbers without I/O; ``load()`` posts it into running
services and returns what was created, per kind. ``make run`` loads it on the first start.
"""

from .city import DemoCity, plan
from .grid import SEED
from .loader import DemoAlreadyLoaded, load

__all__ = ["SEED", "DemoAlreadyLoaded", "DemoCity", "load", "plan"]
