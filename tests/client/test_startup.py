"""The start-up clock of a ClientApp process: measured once, then warm."""

import time

from client.startup import StartupClock, process_start_time


def test_the_process_start_time_is_in_the_past_and_recent_enough():
    started = process_start_time()
    assert started is not None and 0.0 < time.time() - started < 7 * 24 * 3600


def test_the_first_report_gives_process_and_import_seconds_then_zero():
    clock = StartupClock()
    clock.imported()
    first = clock.take()
    assert first["process-seconds"] >= 0.0 and first["import-seconds"] >= 0.0
    assert clock.take() == {"process-seconds": 0.0, "import-seconds": 0.0}
