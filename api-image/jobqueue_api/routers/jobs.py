"""The typed job resource: enqueue one or many, read, cancel."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.exceptions import RequestValidationError

from jobqueue_api.body import JsonBody, json_response
from jobqueue_api.deps import RoutedDep, enqueuer_of
from jobqueue_api.errors import NOT_FOUND, UNAVAILABLE, WITH_BODY, error_doc
from jobqueue_api.middleware import BODY_BYTES_SCOPE_KEY
from jobqueue_api.models import (
    BatchAccepted,
    JobAccepted,
    JobBatchCreate,
    JobCreate,
    JobId,
    JobPublic,
)
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
    return JobPublic.of(found[1])


@router.delete(
    "/jobs/{job_id}",
    responses={**NOT_FOUND, 409: error_doc("The job is no longer queued: it cannot be cancelled.")},
    summary="Cancel a queued or delayed job",
)
async def cancel_job(job_id: JobIdPath, queues: RoutedDep) -> JobPublic:
    found = await queues.get(job_id)
    queue = found[0] if found is not None else queues.default
    cancelled = await queue.cancel(job_id)
    job = await queue.get(job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    if not cancelled:
        raise HTTPException(
            409, f"job {job_id} is {job.status.value}: only queued jobs can be cancelled"
        )
    return JobPublic.of(job)
