"""Wall time of a benchmark side summed over attempts (standard library only: imported both by
al_vs_mlatom.py and by the peer harness in MLatom's environment)."""

import json
import os
import threading
import time
from pathlib import Path


def paused_seconds(clock: Path) -> float:
    """Seconds the run was held with SIGSTOP (to give the cores to something else), as
    written by whoever held it to ``<clock>.paused``; they are not counted as its time."""
    held = clock.with_name(clock.name + ".paused")
    return float(held.read_text()) if held.exists() else 0.0


def stopwatch(path: str | Path):
    """Seconds spent over all attempts: the count in ``path`` plus this attempt's, which a
    thread writes there every 10 s (a killed attempt loses at most 10 s of the count), less
    the seconds recorded in ``<path>.paused`` while this attempt ran. Returns ``elapsed()``."""
    path = Path(path).resolve()
    before = json.loads(path.read_text())["wall_s"] if path.exists() else 0.0
    started = time.perf_counter()
    held_before = paused_seconds(path)

    def elapsed():
        return before + time.perf_counter() - started - (paused_seconds(path) - held_before)

    def tick():
        partial = path.with_name(path.name + ".part")
        while True:
            partial.write_text(json.dumps({"wall_s": elapsed()}))
            os.replace(partial, path)
            time.sleep(10)

    threading.Thread(target=tick, daemon=True).start()
    return elapsed
