"""The garbage collector, tuned for a long-lived asyncio server."""

from __future__ import annotations

import gc

# CPython's default collects the youngest generation every 700 net allocations: under load
# (1,000 interviews, 100 replies streaming) that is every few milliseconds, so a turn's
# objects, alive across a few awaits, were promoted to the old generations and piled up
# until a full collection walked them all. 50,000 lets them die young.
YOUNG_THRESHOLD = 50_000


def tune_after_start_up() -> None:
    """Freeze what start-up built (modules, classes, the encoding, clients: it lives as long
    as the process, so no collection needs to walk it) and raise the young generation's
    threshold, leaving the older generations' at their defaults."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
