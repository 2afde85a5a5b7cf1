"""Job metrics of SPEC §10, in the platform registry (multiprocess-safe like the others)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from keel.platform.metrics import REGISTRY

JOBS_QUEUED = Gauge(
    "jobs_queued",
    "Jobs waiting to run or running (handed-off and not yet handed-off)",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
JOBS_FAILED = Counter(
    "jobs_failed_total", "Jobs that ended dead after their last try", ["job"], registry=REGISTRY
)
JOB_DURATION = Histogram(
    "job_duration_seconds",
    "Time one run of a job took, by job name",
    ["job"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
JOB_LAG = Histogram(
    "job_lag_seconds",
    "Time from the enqueueing commit to the job's first run, by job name",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)
