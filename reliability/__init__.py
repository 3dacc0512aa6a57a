"""Reliability suite (issue 9): figures, not promises.

``python -m reliability [--quick] [--database sqlite|postgres]`` runs every module in
:data:`reliability.__main__.MODULES`; today that is ``faults`` (faults, nothing lost). Further
parts of issue 9 (load, fuzzing, the access-control matrix) become further modules there.
"""
