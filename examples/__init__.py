"""Samples: JobQueue manifests and a task module (examples.tasks) for the worker image."""
