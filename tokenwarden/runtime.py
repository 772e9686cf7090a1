"""Process-level tuning for the long-running commands (serve, replay, worker, benches).

CPython's cyclic garbage collector runs a generation-0 pass every 700 net allocations; a
batch of thousands of validated events kept alive while it moves through the stages makes
those passes (and the promotions they cause) cost more than the validation itself — measured
here: 45k events/s parsed with the default thresholds against 110k events/s with these. We
freeze what start-up allocated and collect less often; memory is still reclaimed.

A Kafka worker's take holds up to ~15,000 events (~14 tracked objects each) at once: at
50,000 net allocations a generation-0 pass still ran several times per take, each one
scanning (and promoting) the take's live events. At 200,000 (session 10, side by side,
same machine): one worker 32,000 -> 35,000-37,000 events/s, the engine of
``bench/pipeline.py`` 118,000 -> 150,000 events/s, ``bench/detectors.py`` at 10k
entities 87,000 -> 101,000 events/s; replay -> order p99 at 300 events/s unchanged
(32-36 ms). Higher (500,000) gained nothing more.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (200_000, 20, 100)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
