"""Task modules and producers of each peer, run inside that peer's own venv (bench/.envs/<peer>).

Every module here imports only the standard library and its own peer, never `bench` internals,
so it runs under any of the venvs. Each task does exactly one Redis INCR of the shared counter
(`BENCH_COUNTER`, on `BENCH_REDIS_URL`) so completions are counted the same way for everyone.
`python -m bench.peers.<peer> produce N [PAYLOAD_BYTES]` enqueues N jobs, one producer call per
job, and prints `{"jobs": N, "seconds": S}`.
"""
