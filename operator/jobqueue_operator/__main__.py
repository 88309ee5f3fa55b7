"""``python -m jobqueue_operator``: run the operator against the current kubeconfig (in a pod:
the in-cluster config), configured by environment variables (see settings.py)."""

from __future__ import annotations

import logging

import kopf

from jobqueue_operator import discovery, relisting
from jobqueue_operator.settings import get_settings


def main() -> None:
    settings = get_settings()
    kopf.configure(
        verbose=settings.log_level == "DEBUG",
        quiet=settings.log_level in ("WARNING", "ERROR"),
        log_format=kopf.LogFormat.JSON,
        log_refkey="object",
    )
    logging.getLogger().setLevel(settings.log_level)
    if settings.log_level != "DEBUG":
        # kopf logs every handler success at INFO (each child event, each timer tick); the
        # operator logs what it changes itself, so keep kopf's per-object lines to problems.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Importing the handlers registers them with kopf's default registry.
    from jobqueue_operator import handlers  # noqa: F401

    relisting.install()
    namespaces = settings.namespaces()
    if namespaces:
        discovery.install()
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=not settings.peering,
        peering_name=settings.peering_name if settings.peering else None,
        liveness_endpoint=(
            f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
        ),
    )


if __name__ == "__main__":
    main()
