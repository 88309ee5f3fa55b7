"""A task API in the shape of seed 001's task-api: POST /tasks?task_type=... pushes the task as
JSON onto the Redis list `tasks` (LPUSH) and keeps its status in `task:<id>`; GET /tasks/<id>;
GET /health. Reads TASK_QUEUE_URL, the name seed 001's platform injects (a JobQueue sets it
beside REDIS_URL)."""

import json
import os
import uuid
from typing import Annotated

import redis
from fastapi import Body, FastAPI, HTTPException

QUEUE_NAME = "tasks"
app = FastAPI(title="Task API")
r = redis.from_url(os.environ["TASK_QUEUE_URL"])


@app.post("/tasks", status_code=202)
def create_task(task_type: str, payload: Annotated[dict | None, Body()] = None) -> dict:
    task_id = uuid.uuid4().hex[:12]
    task = {"id": task_id, "type": task_type, "payload": payload or {}, "status": "queued"}
    r.hset(f"task:{task_id}", mapping={"status": "queued", "type": task_type})
    r.lpush(QUEUE_NAME, json.dumps(task))
    return task


@app.get("/tasks/{task_id}")
def get_task(task_id: str) -> dict:
    data = r.hgetall(f"task:{task_id}")
    if not data:
        raise HTTPException(404, "task not found")
    return {k.decode(): v.decode() for k, v in data.items()}


@app.get("/health")
def health() -> dict:
    r.ping()
    return {"status": "ok"}
