"""Wait until the machine is quiet before a scenario: at least 85 % of its CPU idle over
two seconds in a row (from /proc/stat), for at most 60 s. What the previous scenario left
running (a server finishing its shutdown, PostgreSQL writing out) otherwise lands in the
next one's numbers. Prints how long it waited, and if the machine never quietened.

Usage: .venv/bin/python bench/quiet.py [label]
"""

from __future__ import annotations

import sys
import time

IDLE_AT_LEAST = 0.85
QUIET_SECONDS = 2
GIVE_UP_AFTER = 60.0


def cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies since boot, over every CPU."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return idle, sum(fields)


def idle_share(seconds: float) -> float:
    idle0, total0 = cpu_times()
    time.sleep(seconds)
    idle1, total1 = cpu_times()
    return (idle1 - idle0) / max(1, total1 - total0)


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "next scenario"
    started = time.monotonic()
    quiet = 0
    last = 0.0
    while quiet < QUIET_SECONDS:
        last = idle_share(1.0)
        quiet = quiet + 1 if last >= IDLE_AT_LEAST else 0
        if time.monotonic() - started > GIVE_UP_AFTER:
            print(f"bench: the machine did not quieten for {label} ({last:.0%} idle); going on")
            return
    print(f"bench: quiet before {label} after {time.monotonic() - started:.0f} s ({last:.0%} idle)")


if __name__ == "__main__":
    main()
