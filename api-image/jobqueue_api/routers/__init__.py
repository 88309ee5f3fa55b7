"""One router per resource: jobs, seed-compatible tasks and enqueue, dead letters, stats, health."""
