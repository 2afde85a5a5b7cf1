"""Durable jobs: DBOS queues behind a small typed API (docs/adr/0015-job-engine.md)."""
