"""`python -m keel jobs list|retry ID|cancel ID`: look at and steer jobs from a shell."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from dbos import DBOSClient

from keel.jobs.engine import QUEUE
from keel.settings import load_settings

jobs_cli = typer.Typer(help="Durable jobs: list, retry a dead one, cancel one.")


def _client() -> DBOSClient:
    return DBOSClient(system_database_url=load_settings().effective_jobs_database_url)


@jobs_cli.command("list")
def list_jobs(
    status: Annotated[
        str | None, typer.Option(help="ENQUEUED, PENDING, SUCCESS, ERROR or CANCELLED")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """The newest jobs: id, status, job name, created at, error."""
    client = _client()
    try:
        rows = client.list_workflows(
            status=status.upper() if status else None,
            queue_name=QUEUE,
            limit=limit,
            sort_desc=True,
        )
    finally:
        client.destroy()
    for row in rows:
        args = row.input["args"] if row.input else ()
        job = str(args[0]) if args else row.name
        created = (
            datetime.fromtimestamp(row.created_at / 1000, UTC).isoformat()
            if row.created_at
            else "-"
        )
        error = f"  {type(row.error).__name__}: {row.error}" if row.error else ""
        typer.echo(f"{row.workflow_id}  {row.status:<9}  {job}  {created}{error}")


@jobs_cli.command()
def retry(job_id: str) -> None:
    """Run a dead (or cancelled) job again from its start, as a new job (its id is printed).

    A fork, not a resume: resuming would replay the recorded failures. The new job runs in
    a partition of its own (outside the order of the original's partition)."""
    client = _client()
    try:
        handle = client.fork_workflow(
            job_id,
            1,
            queue_name=QUEUE,
            queue_partition_key=f"retry:{job_id}:{uuid.uuid4().hex}",
        )
    finally:
        client.destroy()
    typer.echo(f"retrying {job_id} as {handle.get_workflow_id()}")


@jobs_cli.command()
def cancel(job_id: str) -> None:
    """Cancel a job that has not finished (it will not run again unless retried)."""
    client = _client()
    try:
        client.cancel_workflow(job_id)
    finally:
        client.destroy()
    typer.echo(f"cancelled {job_id}")
