"""Reliability suite (issue 9): figures, not promises.

``python -m reliability [MODULE ...] [--quick] [--database sqlite|postgres]`` runs the modules
of :data:`reliability.__main__.MODULES` (all by default): ``faults`` (faults, nothing lost) and
``load`` (load held). Further parts of issue 9 become further modules there.
"""
