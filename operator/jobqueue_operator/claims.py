"""The worker volumes' PersistentVolumeClaims of a JobQueue: applied like any child while it
lives (one no longer in the spec deleted only under ``deletionPolicy: Purge``), deleted or
released (no ownerReference, so the garbage collector keeps them) when it is deleted."""

from __future__ import annotations

from jobqueue_operator import builders, diffing
from jobqueue_operator.kube import Kube, KubeError
from jobqueue_operator.kubetypes import JSON, JobQueueRef, rv_of, uid_of
from jobqueue_operator.spec import JobQueueSpec


async def sync(
    kube: Kube,
    ref: JobQueueRef,
    spec: JobQueueSpec,
    applied: list[str],
    pruned: list[str],
    errors: list[str],
) -> None:
    """The worker volumes' PersistentVolumeClaims: applied like any child; one no longer
    in the spec is deleted only under ``deletionPolicy: Purge`` (Retain keeps data)."""
    desired = [diffing.with_applied_hash(m) for m in builders.worker_claims(ref, spec)]
    live_list: list[JSON] = []
    if desired or spec.deletion_policy == "Purge":
        live_list = await kube.list(
            "PersistentVolumeClaim", ref.namespace, builders.claim_selector(ref.name)
        )
    live = {diffing.child_key(obj): obj for obj in live_list}
    for manifest in desired:
        key = diffing.child_key(manifest)
        if not diffing.needs_apply(manifest, live.get(key)):
            continue
        try:
            result = await kube.apply(manifest)
        except KubeError as exc:
            errors.append(f"{key[0]}/{key[1]}: {exc}")
            continue
        before = live.get(key)
        if before is None or rv_of(before) != rv_of(result):
            applied.append(f"{'created' if before is None else 'updated'} {key[0]}/{key[1]}")
    if spec.deletion_policy != "Purge":
        return
    wanted = {diffing.child_key(m) for m in desired}
    for key, obj in live.items():
        if key in wanted or (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue
        try:
            await kube.delete(key[0], ref.namespace, key[1], uid=uid_of(obj))
        except KubeError as exc:
            errors.append(f"{key[0]}/{key[1]}: {exc}")
            continue
        pruned.append(f"{key[0]}/{key[1]}")


async def release(kube: Kube, ref: JobQueueRef, spec: JobQueueSpec | None) -> str:
    """On delete: Purge deletes the worker volumes' claims; Retain keeps them, first
    taking off any ownerReference (a policy changed to Retain just before the delete) so
    the garbage collector leaves them alone."""
    claims = await kube.list(
        "PersistentVolumeClaim", ref.namespace, builders.claim_selector(ref.name)
    )
    if not claims:
        return ""
    if spec is not None and spec.deletion_policy == "Purge":
        for claim in claims:
            await kube.delete(
                "PersistentVolumeClaim", ref.namespace, claim["metadata"]["name"], uid_of(claim)
            )
        return f"; {len(claims)} worker volume claims deleted"
    if spec is not None:
        owned = {
            diffing.child_key(obj)
            for obj in claims
            if (obj.get("metadata") or {}).get("ownerReferences")
        }
        for manifest in builders.worker_claims(ref, spec):
            if diffing.child_key(manifest) in owned:
                await kube.apply(diffing.with_applied_hash(manifest))
    return f"; {len(claims)} worker volume claims kept"
