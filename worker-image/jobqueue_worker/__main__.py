"""`python -m jobqueue_worker`: run the worker (see jobqueue_worker.app)."""

from __future__ import annotations

from jobqueue_worker.app import main

raise SystemExit(main())
