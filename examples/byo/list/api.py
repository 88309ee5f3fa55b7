"""A job API in the shape of seed 000's job-api: POST /enqueue pushes a job id onto the Redis
list `jobs` (LPUSH) and answers 202; /healthz on port 8080. Reads REDIS_URL."""

import os
import uuid

import redis
from flask import Flask, jsonify

QUEUE = os.environ.get("QUEUE_NAME", "jobs")
app = Flask(__name__)
r = redis.from_url(os.environ["REDIS_URL"])


@app.post("/enqueue")
def enqueue():
    job_id = str(uuid.uuid4())
    r.lpush(QUEUE, job_id)
    return jsonify(job_id=job_id), 202


@app.get("/healthz")
def healthz():
    return "ok"


if __name__ == "__main__":
    from waitress import serve

    serve(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8080")), threads=8)  # noqa: S104
