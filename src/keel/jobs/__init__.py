"""Durable jobs: DBOS queues behind a small typed API (docs/adr/0013-job-engine.md)."""
