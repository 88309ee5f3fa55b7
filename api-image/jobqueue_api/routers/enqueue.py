"""Seed 000's endpoint: POST /enqueue -> 202 {"job_id"}; the body is optional."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from jobqueue_api.body import JsonBody, json_response
from jobqueue_api.deps import enqueuer_of
from jobqueue_api.errors import UNAVAILABLE, WITH_BODY
from jobqueue_api.models import EnqueueAccepted, EnqueueRequest

router = APIRouter(tags=["enqueue (seed-compatible)"], responses=UNAVAILABLE)

BODY = JsonBody[EnqueueRequest](
    EnqueueRequest,
    required=False,
    default=EnqueueRequest(),
    description="Optional: without it the job has type `default` and a null payload.",
)


@router.post(
    "/enqueue",
    status_code=202,
    response_model=EnqueueAccepted,
    responses=WITH_BODY,
    openapi_extra=BODY.openapi(),
    summary="Enqueue a job (seed 000 shape)",
)
async def enqueue(request: Request) -> Response:
    body = await BODY.parse(request)
    result = await enqueuer_of(request).enqueue(body.to_spec())
    return json_response(EnqueueAccepted(job_id=result.job_id), 202)
