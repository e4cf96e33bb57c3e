"""The garbage collector, set for a long-running role process."""

from __future__ import annotations

import gc

# Net allocations between young collections (CPython's default is 700). At the defaults a
# role made hundreds of collections in a 5,300-message run, full ones walking everything
# start-up made: 4 to 8 % of its CPU (docs/performance.md). Now one or two.
YOUNG_THRESHOLD = 20_000
# Young collections per middle one, middle ones per full one (defaults 10 and 10).
MIDDLE_EVERY = 50
FULL_EVERY = 100


def settle_after_start() -> None:
    """Call once the roles have started: what start-up made (modules, the directory, the
    apps, ~70 MB) lives as long as the process, so it is frozen out of every later
    collection, and collections come less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_EVERY, FULL_EVERY)
