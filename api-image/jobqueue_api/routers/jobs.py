"""The typed job resource: enqueue one or many, list by state, read, cancel."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from jobqueue import Queue
from jobqueue.browse import ListState
from jobqueue_api import constants as c
from jobqueue_api.body import JsonBody, json_response
from jobqueue_api.cursors import BadCursor
from jobqueue_api.deps import RoutedDep, enqueuer_of
from jobqueue_api.errors import NOT_FOUND, UNAVAILABLE, WITH_BODY, OpenAPIResponses, error_doc
from jobqueue_api.listing import list_page
from jobqueue_api.middleware import BODY_BYTES_SCOPE_KEY
from jobqueue_api.models import (
    BatchAccepted,
    JobAccepted,
    JobBatchCreate,
    JobCreate,
    JobId,
    JobPublic,
    JobsPage,
    JobType,
)
from jobqueue_api.routing import RoutedQueues
from jobqueue_api.settings import Settings

router = APIRouter(tags=["jobs"], responses=UNAVAILABLE)

JobIdPath = Annotated[JobId, Path(description="The id returned when the job was enqueued.")]

JOB_BODY = JsonBody[JobCreate](JobCreate)
BATCH_BODY = JsonBody[JobBatchCreate](JobBatchCreate, description="At most MAX_BATCH jobs.")


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses={**WITH_BODY, 202: {"headers": {"Location": {"schema": {"type": "string"}}}}},
    openapi_extra=JOB_BODY.openapi(),
    summary="Enqueue one job",
)
async def create_job(request: Request) -> Response:
    job = await JOB_BODY.parse(request)
    result = await enqueuer_of(request).enqueue(job.to_spec())
    return json_response(JobAccepted.of(result), 202, {"Location": f"/jobs/{result.job_id}"})


def _check_batch(batch: JobBatchCreate, settings: Settings, body_bytes: int) -> None:
    if len(batch.jobs) > settings.max_batch:
        raise RequestValidationError(
            [
                {
                    "type": "too_long",
                    "loc": ("body", "jobs"),
                    "msg": f"at most {settings.max_batch} jobs per batch",
                    "input": None,
                }
            ]
        )
    # A body no larger than the single-job limit cannot hold a payload over it: skip the work.
    if body_bytes > settings.max_payload_bytes:
        for i, job in enumerate(batch.jobs):
            if len(orjson.dumps(job.payload)) > settings.max_payload_bytes:
                raise HTTPException(
                    413, f"jobs[{i}].payload is larger than {settings.max_payload_bytes} bytes"
                )


@router.post(
    "/jobs:batch",
    status_code=202,
    response_model=BatchAccepted,
    responses=WITH_BODY,
    openapi_extra=BATCH_BODY.openapi(),
    summary="Enqueue many jobs",
)
async def create_jobs(request: Request) -> Response:
    """All jobs go to Redis in one round trip; ids come back in request order."""
    batch = await BATCH_BODY.parse(request)
    settings: Settings = request.app.state.settings
    _check_batch(batch, settings, request.scope.get(BODY_BYTES_SCOPE_KEY, 0))
    results = await enqueuer_of(request).enqueue_many([job.to_spec() for job in batch.jobs])
    return json_response(BatchAccepted.of(results), 202)


@router.get("/jobs/{job_id}", responses=NOT_FOUND, summary="Read a job")
async def get_job(job_id: JobIdPath, queues: RoutedDep) -> JobPublic:
    found = await queues.get(job_id)
    if found is None:
        raise HTTPException(404, f"job {job_id} not found")
    return JobPublic.of(found[1], found[0].name)


@router.delete(
    "/jobs/{job_id}",
    responses={**NOT_FOUND, 409: error_doc("The job is no longer queued: it cannot be cancelled.")},
    summary="Cancel a queued or delayed job",
)
async def cancel_job(job_id: JobIdPath, queues: RoutedDep) -> JobPublic:
    return await _cancel(queues, job_id, running=False)


async def _cancel(queues: RoutedQueues, job_id: str, *, running: bool) -> JobPublic:
    """Cancel in the job's queue; 404 unknown, 409 with the job's state when nothing changed."""
    found = await queues.get(job_id)
    queue = found[0] if found is not None else queues.default
    cancelled = await queue.cancel(job_id, running=running)
    job = await queue.get(job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    if not cancelled:
        allowed = "a finished job cannot" if running else "only queued jobs can"
        raise HTTPException(409, f"job {job_id} is {job.status.value}: {allowed} be cancelled")
    return JobPublic.of(job, queue.name)


_LIST_ERRORS: OpenAPIResponses = {
    400: error_doc(
        "A cursor this API did not return, or one of another state or of a queue not "
        "listed; nothing was read."
    ),
    404: error_doc("A queue this API does not serve."),
}


@router.get("/jobs", responses=_LIST_ERRORS, summary="List jobs by state, a page at a time")
async def list_jobs(
    queues: RoutedDep,
    state: Annotated[
        ListState,
        Query(
            description="queued and running in claim order; delayed and failed (waiting for "
            "a retry) by due time; dead, completed and cancelled newest first."
        ),
    ] = ListState.QUEUED,
    job_type: Annotated[JobType | None, Query(alias="type", description="Only this type.")] = None,
    queue: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="A queue name or a pool name; default: every queue.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=c.JOBS_MAX_LIMIT)] = c.JOBS_DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=4096, description="`next_cursor` of a page.")
    ] = None,
) -> JobsPage:
    """Each call examines a bounded number of jobs, however long the queue: a filtered page
    may come back short, even empty, with a `next_cursor` to go on with. Without `queue`,
    waiting jobs are listed queue after queue, finished ones merged newest first."""
    targets: list[Queue]
    if queue is None:
        targets = list(queues.all)
    else:
        found = queues.find(queue)
        if found is None:
            served = ", ".join(q.name for q in queues.all)
            raise HTTPException(404, f"no queue {queue!r} here; this API serves: {served}")
        targets = [found]
    try:
        return await list_page(targets, state, job_type=job_type, limit=limit, cursor=cursor)
    except BadCursor as exc:
        raise HTTPException(400, str(exc)) from None


@router.post(
    "/jobs/{job_id}/cancel",
    responses={**NOT_FOUND, 409: error_doc("The job has finished: it cannot be cancelled.")},
    summary="Cancel a queued, delayed, retrying or running job",
)
async def cancel_any_job(job_id: JobIdPath, queues: RoutedDep) -> JobPublic:
    """A running job is cancelled cooperatively: its lease is dropped at once (whatever its
    worker reports later changes nothing), and its worker, told on the queue's control
    channel, sets `ctx.cancelled` and cancels the task (an async task gets CancelledError; a
    sync task should check `ctx.cancelled`)."""
    return await _cancel(queues, job_id, running=True)
