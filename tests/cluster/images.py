"""Container images without a registry: a Debian Python base, the pause image and the project's
Dockerfiles built with buildah, cached by a hash of their inputs, imported into containerd.

    python -m tests.cluster.images build [--only api,worker] [--dockerfile api=path]
    python -m tests.cluster.images import --address /path/containerd.sock
    python -m tests.cluster.images clean

Pipeline (every artifact under ~/.cache/jobqueue-operator/images, keyed by an input hash):
- base:  `debootstrap --variant=minbase` of Debian bookworm (python3, venv, CA certificates) from
         the mirror in the apt sources, made an OCI layout with umoci (tag `python3`);
- pause: build/pause/linux/pause.c of k8s.io/kubernetes compiled with `gcc -static`, written as
         a one-layer OCI archive by this module (`localhost/pause:3.10.1`);
- apps:  `buildah bud --build-arg BASE_IMAGE=oci:<base layout>:python3 -f <x>/Dockerfile .`
         with the repo root as context, pushed to an oci-archive `localhost/jobqueue-<x>:dev`.
The Dockerfiles stay the ones users build with Docker (`BASE_IMAGE` defaults to
python:3.11-slim there). Import is `ctr -n k8s.io images import`, skipped when containerd
already holds the same manifest digest.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.cluster._run import CommandError, output, run, setup_logging, step

log = logging.getLogger("jq.images")

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("JQ_CACHE", Path.home() / ".cache" / "jobqueue-operator"))
IMAGES_DIR = CACHE / "images"
# overlay (kernel overlayfs, we are root) is ~2x faster and ~4x smaller than vfs, which copies
# the whole root filesystem for every step; JQ_BUILDAH_DRIVER=vfs is the fallback.
BUILDAH_DRIVER = os.environ.get("JQ_BUILDAH_DRIVER", "overlay")
BUILDAH_ROOT = IMAGES_DIR / "buildah" / BUILDAH_DRIVER
K8S_VERSION = "v1.34.2"

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "python-is-python3")
BASE_TAG = "python3"
BASE_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "PYTHONDONTWRITEBYTECODE=1",
)
PAUSE_TAG = "3.10.1"
PAUSE_IMAGE = f"localhost/pause:{PAUSE_TAG}"
PAUSE_UID = 65535
IMAGE_TAG = os.environ.get("JQ_IMAGE_TAG", "dev")
# Bump to invalidate every cached artifact when the recipe itself changes.
RECIPE_VERSION = "2"
# Never part of an image's input hash (build debris, local state).
HASH_IGNORE = (
    "__pycache__",
    "*.pyc",
    ".git",
    ".venv",
    ".cluster",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True, slots=True)
class AppImage:
    """One of the project's images: its short name and Dockerfile (relative to the repo root)."""

    name: str
    dockerfile: str

    @property
    def ref(self) -> str:
        return f"localhost/jobqueue-{self.name}:{IMAGE_TAG}"


APP_IMAGES = (
    AppImage("api", "api-image/Dockerfile"),
    AppImage("worker", "worker-image/Dockerfile"),
    AppImage("operator", "operator/Dockerfile"),
)
#: The managed Redis on the node (Debian's redis-server, uid 10001; the operator's default
#: docker.io/library/redis cannot be pulled here). Built on demand: the demo, the e2e tests.
REDIS_IMAGE = AppImage("redis", "demo/redis-image/Dockerfile")
#: The bring-your-own examples (examples/byo/): images users already have, built the same way
#: on demand (`build --only example-list,...`, the e2e tests) and never by default.
EXAMPLE_IMAGES = tuple(
    AppImage(f"example-{x}", f"examples/byo/{x}/Dockerfile")
    for x in ("list", "tasks", "celery", "rq")
)


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """An image ready to import: its reference, its oci-archive and the manifest digest in it."""

    ref: str
    archive: Path
    digest: str
    cached: bool


# ---------------------------------------------------------------- pure helpers


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_of(parts: dict[str, object]) -> str:
    """A stable short hash of a JSON-serialisable description of an artifact's inputs."""
    return sha256_hex(json.dumps(parts, sort_keys=True).encode())[:16]


def parse_apt_sources(texts: Iterable[str], suite: str) -> str | None:
    """The first Debian mirror serving `suite` with `main`, from one-line or deb822 sources."""
    for text in texts:
        # deb822 stanzas
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
            if (
                "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
            ) and "main" in fields.get("components", "").split():
                return fields.get("uris", "").split()[0]
        # one-line format
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) >= 4 and words[0] == "deb":
                rest = [w for w in words[1:] if not w.startswith("[")]
                if len(rest) >= 3 and rest[1] == suite and "main" in rest[2:]:
                    return rest[0]
    return None


def apt_mirror(suite: str = SUITE) -> str:
    """The Debian mirror this machine's apt uses (so debootstrap goes where apt goes)."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file() and path.suffix in {".list", ".sources", ""}:
            texts.append(path.read_text(errors="replace"))
    return parse_apt_sources(texts, suite) or DEFAULT_MIRROR


def dockerfile_sources(text: str) -> list[str]:
    """The context paths a Dockerfile COPYs or ADDs (not `--from=` stages), in order."""
    # Join continuation lines first.
    joined = re.sub(r"\\\s*\n", " ", text)
    sources: list[str] = []
    for raw in joined.splitlines():
        line = raw.strip()
        m = re.match(r"(?i)^(COPY|ADD)\s+(.*)$", line)
        if not m:
            continue
        rest = m.group(2).strip()
        words: list[str]
        flags = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if any(f.startswith("--from") for f in flags):
            continue
        words = [str(w) for w in json.loads(rest)] if rest.startswith("[") else rest.split()
        sources.extend(words[:-1])
    return sources


def _ignored(rel: Path) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in HASH_IGNORE)


def hash_context(root: Path, patterns: Sequence[str]) -> str:
    """Hash the files (names, modes, contents) the given COPY sources name under `root`."""
    h = hashlib.sha256()
    files: set[Path] = set()
    for pattern in patterns:
        matches = sorted(root.glob(pattern.lstrip("/"))) if pattern not in {".", "./"} else [root]
        if not matches:
            h.update(f"missing:{pattern}\n".encode())
        for match in matches:
            if match.is_dir():
                files.update(p for p in match.rglob("*") if p.is_file())
            elif match.is_file():
                files.add(match)
    for path in sorted(files):
        rel = path.relative_to(root)
        if _ignored(rel):
            continue
        h.update(f"{rel}\0{path.stat().st_mode & 0o777:o}\0".encode())
        h.update(sha256_hex(path.read_bytes()).encode())
    return h.hexdigest()


# ---------------------------------------------------------------- base image


def base_key(mirror: str) -> str:
    return key_of(
        {
            "recipe": RECIPE_VERSION,
            "suite": SUITE,
            "packages": BASE_PACKAGES,
            "mirror": mirror,
            "env": BASE_ENV,
            "arch": os.uname().machine,
        }
    )


def _trim_rootfs(rootfs: Path) -> None:
    """Drop what an image does not need: apt lists and caches, docs, logs, device nodes."""
    for rel in (
        "var/lib/apt/lists",
        "var/cache/apt",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "var/log",
        "dev",
        "run",
        "tmp",
    ):
        d = rootfs / rel
        if d.is_dir():
            for child in d.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    for name in ("etc/hostname", "etc/resolv.conf"):
        (rootfs / name).write_text("")
    # The local build bind-mounts the host's pip settings (index, CA bundle) here during RUN
    # steps; an existing file keeps the mount point out of the image's layers.
    (rootfs / "etc/pip.conf").write_text("# site-wide pip configuration (none)\n")


def ensure_base() -> tuple[Path, str]:
    """The Debian Python base as an OCI layout (tag `python3`); built once per input hash."""
    mirror = apt_mirror()
    key = base_key(mirror)
    layout = IMAGES_DIR / f"base-{key}"
    if (layout / "index.json").is_file():
        log.info("base image cached: %s (key %s)", layout, key)
        return layout, key
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-base-{key}-", dir=IMAGES_DIR))
    logfile = work / "build.log"
    tmp_layout, bundle = work / "oci", work / "bundle"
    image = f"{tmp_layout}:{BASE_TAG}"
    try:
        with step(
            f"base image: debootstrap {SUITE} minbase + {','.join(BASE_PACKAGES)} from {mirror}"
        ):
            run(["umoci", "init", "--layout", tmp_layout], logfile=logfile)
            run(["umoci", "new", "--image", image], logfile=logfile)
            run(["umoci", "unpack", "--image", image, bundle], logfile=logfile)
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    "--components=main",
                    SUITE,
                    bundle / "rootfs",
                    mirror,
                ],
                logfile=logfile,
            )
            _trim_rootfs(bundle / "rootfs")
        with step("base image: umoci repack + config"):
            run(["umoci", "repack", "--image", image, bundle], logfile=logfile)
            config = ["umoci", "config", "--image", image, "--os", "linux"]
            config += ["--architecture", _oci_arch(), "--config.workingdir", "/"]
            config += ["--config.cmd", "python3", "--author", "jobqueue-operator tests/cluster"]
            for env in BASE_ENV:
                config += ["--config.env", env]
            run(config, logfile=logfile)
            run(["umoci", "gc", "--layout", tmp_layout], logfile=logfile)
        shutil.rmtree(bundle)
        tmp_layout.rename(layout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stale = [old for old in IMAGES_DIR.glob("base-*") if old != layout]
    for old in stale:
        shutil.rmtree(old, ignore_errors=True)
    if stale and BUILDAH_ROOT.is_dir():
        # Layers cached on an old base can never be used again.
        run([*buildah_cmd(), "rmi", "--all", "--force"], check=False)
    log.info("base image: %s (%s)", layout, _du(layout))
    return layout, key


def _oci_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _du(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return f"{total / 1e6:.0f} MB"


# ---------------------------------------------------------------- pause image


def pause_source() -> Path:
    gomodcache = output(["go", "env", "GOMODCACHE"]).strip()
    src = Path(gomodcache) / f"k8s.io/kubernetes@{K8S_VERSION}/build/pause/linux/pause.c"
    if not src.is_file():
        raise RuntimeError(
            f"{src} is missing: run `tests/cluster/build.sh k8s` (downloads the k8s module)"
        )
    return src


def _tar_member(tf: tarfile.TarFile, name: str, data: bytes, mode: int, uid: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, uid, 0
    tf.addfile(info, io.BytesIO(data))


def oci_archive(
    ref: str, layer_files: dict[str, tuple[bytes, int]], config: dict[str, object]
) -> bytes:
    """A one-layer OCI image archive (tar of an OCI layout) named `ref`. Pure, deterministic."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, (data, mode) in sorted(layer_files.items()):
            _tar_member(tf, name, data, mode)
    layer_tar = raw.getvalue()
    layer_gz = gzip.compress(layer_tar, mtime=0)
    cfg = {
        "architecture": _oci_arch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha256_hex(layer_tar)}"]},
    }
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{sha256_hex(cfg_bytes)}",
            "size": len(cfg_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": f"sha256:{sha256_hex(layer_gz)}",
                "size": len(layer_gz),
            }
        ],
    }
    man_bytes = json.dumps(manifest, sort_keys=True).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{sha256_hex(man_bytes)}",
                "size": len(man_bytes),
                "annotations": {"org.opencontainers.image.ref.name": ref},
                "platform": {"architecture": _oci_arch(), "os": "linux"},
            }
        ],
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        _tar_member(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644)
        _tar_member(tf, "index.json", json.dumps(index, sort_keys=True).encode(), 0o644)
        for blob in (cfg_bytes, man_bytes, layer_gz):
            _tar_member(tf, f"blobs/sha256/{sha256_hex(blob)}", blob, 0o644)
    return out.getvalue()


def ensure_pause() -> BuiltImage:
    """The sandbox image, compiled from the Kubernetes sources of the version we run."""
    src = pause_source()
    cflags = ["-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_TAG}-jobqueue"]
    key = key_of({"recipe": RECIPE_VERSION, "src": sha256_hex(src.read_bytes()), "cflags": cflags})
    archive = IMAGES_DIR / f"pause-{key}.tar"
    if not archive.is_file():
        IMAGES_DIR.mkdir(parents=True, exist_ok=True)
        with step(f"pause image: gcc -static {src.name}"), tempfile.TemporaryDirectory() as tmp:
            binary = Path(tmp) / "pause"
            run(["gcc", *cflags, "-o", binary, src])
            run(["strip", binary])
            data = oci_archive(
                PAUSE_IMAGE,
                {"pause": (binary.read_bytes(), 0o755)},
                {"Entrypoint": ["/pause"], "User": f"{PAUSE_UID}:{PAUSE_UID}"},
            )
            tmp_archive = archive.with_suffix(".tmp")
            tmp_archive.write_bytes(data)
            tmp_archive.rename(archive)
        _remove_stale("pause-*.tar", archive)
        return BuiltImage(PAUSE_IMAGE, archive, archive_digest(archive), cached=False)
    log.info("pause image cached: %s", archive)
    return BuiltImage(PAUSE_IMAGE, archive, archive_digest(archive), cached=True)


# ---------------------------------------------------------------- app images


def archive_digest(archive: Path) -> str:
    """The manifest digest an oci-archive's index.json points at."""
    with tarfile.open(archive) as tf:
        member = tf.extractfile("index.json")
        if member is None:
            raise RuntimeError(f"{archive}: no index.json")
        index = json.load(member)
    return str(index["manifests"][0]["digest"])


def _remove_stale(pattern: str, keep: Path) -> None:
    for old in IMAGES_DIR.glob(pattern):
        if old != keep:
            old.unlink(missing_ok=True)


def buildah_cmd() -> list[str]:
    """buildah on storage of its own, never the machine's /var/lib/containers."""
    return [
        "buildah",
        "--root",
        str(BUILDAH_ROOT / "root"),
        "--runroot",
        str(BUILDAH_ROOT / "runroot"),
        "--storage-driver",
        BUILDAH_DRIVER,
    ]


def _pip_conf() -> str:
    """A build-time pip config mirroring the host's index and CA settings (mounted, not copied)."""
    lines = ["[global]"]
    if HOST_CA_BUNDLE.is_file():
        lines.append(f"cert = {HOST_CA_BUNDLE}")
    for env, key in (
        ("PIP_INDEX_URL", "index-url"),
        ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
        ("PIP_TRUSTED_HOST", "trusted-host"),
    ):
        if os.environ.get(env):
            lines.append(f"{key} = {os.environ[env]}")
    return "\n".join(lines) + "\n"


def app_key(image: AppImage, dockerfile: Path, base: str) -> str:
    text = dockerfile.read_text()
    sources = dockerfile_sources(text)
    dockerignore = REPO / ".dockerignore"
    return key_of(
        {
            "recipe": RECIPE_VERSION,
            "base": base,
            "ref": image.ref,
            "dockerfile": sha256_hex(text.encode()),
            "context": hash_context(REPO, sources),
            "dockerignore": sha256_hex(dockerignore.read_bytes()) if dockerignore.is_file() else "",
        }
    )


def ensure_app(
    image: AppImage, base_layout: Path, base: str, dockerfile: Path | None = None
) -> BuiltImage:
    """Build one project image with buildah unless an archive with the same input hash exists."""
    dockerfile = dockerfile or REPO / image.dockerfile
    if not dockerfile.is_file():
        raise RuntimeError(f"{dockerfile} does not exist: the {image.name} image cannot be built")
    key = app_key(image, dockerfile, base)
    stem = f"jobqueue-{image.name}-{IMAGE_TAG}"
    archive = IMAGES_DIR / f"{stem}-{key}.tar"
    if archive.is_file():
        log.info("%s cached: %s", image.ref, archive.name)
        return BuiltImage(image.ref, archive, archive_digest(archive), cached=True)
    logfile = IMAGES_DIR / "logs" / f"{stem}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    logfile.write_text("")
    with tempfile.TemporaryDirectory(prefix="jq-build-") as tmp:
        pip_conf = Path(tmp) / "pip.conf"
        pip_conf.write_text(_pip_conf())
        mounts = ["--volume", f"{pip_conf}:/etc/pip.conf:ro"]
        if HOST_CA_BUNDLE.is_file():
            mounts += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        with step(f"{image.ref}: buildah bud -f {dockerfile} (log {logfile})"):
            run(
                [
                    *buildah_cmd(),
                    "bud",
                    "--isolation",
                    "chroot",
                    "--layers",
                    "--build-arg",
                    # Relative to cwd: buildah names the pulled base after the path, and a
                    # dot-directory such as ~/.cache is not a valid image name component.
                    f"BASE_IMAGE=oci:{base_layout.name}:{BASE_TAG}",
                    *mounts,
                    "-f",
                    str(dockerfile),
                    "-t",
                    image.ref,
                    str(REPO),
                ],
                logfile=logfile,
                cwd=base_layout.parent,
            )
    with step(f"{image.ref}: push to oci-archive"):
        tmp_archive = archive.with_suffix(".tmp")
        tmp_archive.unlink(missing_ok=True)
        run(
            [*buildah_cmd(), "push", image.ref, f"oci-archive:{tmp_archive}:{image.ref}"],
            logfile=logfile,
        )
        tmp_archive.rename(archive)
    _remove_stale(f"{stem}-*.tar", archive)
    log.info("%s: %s, %.0f MB", image.ref, archive.name, archive.stat().st_size / 1e6)
    return BuiltImage(image.ref, archive, archive_digest(archive), cached=False)


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One builder at a time per cache (a second one waits, then finds the cache warm)."""
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    with (IMAGES_DIR / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another image build is running: waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_all(
    names: Sequence[str] | None = None, dockerfiles: dict[str, Path] | None = None
) -> list[BuiltImage]:
    """Pause + base + the named images (default: the three app images; the examples of
    EXAMPLE_IMAGES by name), each built only if its inputs changed."""
    dockerfiles = dockerfiles or {}
    known = APP_IMAGES + EXAMPLE_IMAGES
    wanted = [i for i in known if (i in APP_IMAGES if names is None else i.name in names)]
    unknown = set(names or ()) - {i.name for i in known}
    if unknown:
        raise ValueError(f"unknown images: {sorted(unknown)}")
    t0 = time.monotonic()
    with build_lock():
        built = [ensure_pause()]
        if wanted:
            layout, base = ensure_base()
            built += [ensure_app(i, layout, base, dockerfiles.get(i.name)) for i in wanted]
    log.info(
        "images ready in %.1f s (%d rebuilt): %s",
        time.monotonic() - t0,
        sum(not b.cached for b in built),
        ", ".join(b.ref for b in built),
    )
    return built


def build_redis() -> BuiltImage:
    """`localhost/jobqueue-redis:<tag>` (REDIS_IMAGE), cached by input hash like the others."""
    with build_lock():
        layout, base = ensure_base()
        return ensure_app(REDIS_IMAGE, layout, base)


# ---------------------------------------------------------------- containerd import


def ctr_cmd(address: Path, namespace: str = "k8s.io") -> list[str]:
    return ["ctr", "--address", str(address), "--namespace", namespace]


def containerd_images(address: Path) -> dict[str, str]:
    """Image reference -> target digest, for the images containerd's k8s.io namespace holds
    complete and unpacked (an import that failed half-way leaves an image record whose
    layers were never unpacked: that one does not count)."""
    lines = output([*ctr_cmd(address), "images", "check"]).splitlines()[1:]
    result = {}
    for line in lines:
        # REF TYPE DIGEST STATUS (n/n) SIZE... UNPACKED
        cols = line.split()
        if len(cols) >= 5 and cols[3] == "complete" and cols[-1] == "true":
            result[cols[0]] = cols[2]
    return result


class ImageStoreError(RuntimeError):
    """containerd refused an import: its image store is inconsistent (e.g. a snapshot it
    lists is gone after an unclean stop); emptying the store and importing again fixes it."""


def import_images(images: Sequence[BuiltImage], address: Path) -> None:
    """Import each archive into containerd (k8s.io namespace) unless the same digest is there."""
    present = containerd_images(address)
    for image in images:
        if present.get(image.ref) == image.digest:
            log.info("%s already in containerd (%s)", image.ref, image.digest[:19])
            continue
        base_name = image.ref.rsplit(":", 1)[0]
        with step(f"{image.ref}: ctr images import"):
            try:
                run([*ctr_cmd(address), "images", "import", "--base-name", base_name,
                     image.archive])  # fmt: skip
            except CommandError as exc:
                raise ImageStoreError(f"{image.ref}: {exc}") from exc
        now = containerd_images(address).get(image.ref)
        if now != image.digest:
            raise RuntimeError(
                f"{image.ref}: containerd holds {now} after import, expected {image.digest}"
            )


def clean() -> None:
    """Remove buildah's storage and every cached image artifact."""
    with contextlib.suppress(FileNotFoundError):
        subprocess.run([*buildah_cmd(), "rm", "--all"], check=False, capture_output=True)
        subprocess.run(
            [*buildah_cmd(), "rmi", "--all", "--force"], check=False, capture_output=True
        )
    shutil.rmtree(IMAGES_DIR, ignore_errors=True)


# ---------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging("images")
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.images")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) pause, base and app images")
    b.add_argument("--only", default=None, help="comma-separated: api,worker,operator")
    b.add_argument("--dockerfile", action="append", default=[], help="name=path override")
    i = sub.add_parser("import", help="build if needed, then import into containerd")
    i.add_argument("--address", required=True, type=Path, help="containerd socket")
    i.add_argument("--only", default=None)
    sub.add_parser("clean", help="remove the image cache and buildah storage")
    args = parser.parse_args(argv)
    if args.cmd == "clean":
        clean()
        return 0
    names = args.only.split(",") if args.only else None
    overrides = {}
    for item in getattr(args, "dockerfile", []):
        name, _, path = item.partition("=")
        overrides[name] = Path(path).resolve()
    built = build_all(names, overrides)
    if args.cmd == "import":
        import_images(built, args.address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
