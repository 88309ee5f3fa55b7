"""The Redis queue protocol shared by the API, the worker and the operator."""
