"""Seed 001's task resource: POST /tasks?task_type=... with the payload as body, GET /tasks/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from jobqueue import JobSpec, JobStatus
from jobqueue_api.body import JsonBody, json_response
from jobqueue_api.deps import RoutedDep, enqueuer_of
from jobqueue_api.errors import NOT_FOUND, UNAVAILABLE, WITH_BODY
from jobqueue_api.models import JobId, JobType, JsonValue, TaskPublic

router = APIRouter(tags=["tasks (seed-compatible)"], responses=UNAVAILABLE)


PAYLOAD = JsonBody[Any](
    JsonValue, required=False, description="The task's payload: any JSON value."
)


@router.post(
    "/tasks",
    response_model=TaskPublic,
    responses=WITH_BODY,
    openapi_extra=PAYLOAD.openapi(),
    summary="Enqueue a task (seed 001 shape)",
)
async def create_task(
    task_type: Annotated[JobType, Query(description="The task name, e.g. `email`.")],
    request: Request,
) -> Response:
    payload = await PAYLOAD.parse(request)
    result = await enqueuer_of(request).enqueue(JobSpec(type=task_type, payload=payload))
    task = TaskPublic(id=result.job_id, type=task_type, payload=payload, status=JobStatus.QUEUED)
    return json_response(task, 200)


@router.get("/tasks/{task_id}", responses=NOT_FOUND, summary="Read a task (seed 001 shape)")
async def get_task(task_id: Annotated[JobId, Path()], queues: RoutedDep) -> TaskPublic:
    found = await queues.get(task_id)
    if found is None:
        raise HTTPException(404, f"task {task_id} not found")
    return TaskPublic.of(found[1])
