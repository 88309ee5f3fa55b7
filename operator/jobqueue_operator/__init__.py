"""The kopf operator that reconciles JobQueue resources."""
