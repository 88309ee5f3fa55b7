"""Certificates and keys for the local cluster, made with the openssl CLI (no crypto library)."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import host_tools

#: CA and leaf keys: ECDSA P-256 (instant to generate; Go and OpenSSL clients accept it).
EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
#: Service-account signing key: RSA, the algorithm every token consumer supports.
RSA_BITS = 2048
CA_DAYS = 3650
CERT_DAYS = 825


class PKIError(RuntimeError):
    """openssl failed; the message carries its stderr."""


@dataclass(frozen=True, slots=True)
class CertPair:
    """A PEM certificate and its unencrypted PEM private key."""

    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    binary = host_tools.require("openssl")
    proc = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PKIError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def _subject(cn: str, orgs: tuple[str, ...]) -> str:
    return "".join(f"/O={o}" for o in orgs) + f"/CN={cn}"


def new_ca(directory: Path, name: str, cn: str) -> CertPair:
    """A self-signed CA `<name>.crt` / `<name>.key` in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl(
        "req", "-x509", *EC_KEY, "-nodes", "-sha256",
        "-days", str(CA_DAYS), "-subj", f"/CN={cn}",
        "-keyout", str(pair.key), "-out", str(pair.cert),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    pair.key.chmod(0o600)
    return pair


def issue(
    ca: CertPair,
    directory: Path,
    name: str,
    *,
    cn: str,
    orgs: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    client: bool = True,
) -> CertPair:
    """A leaf certificate `<name>.crt` / `<name>.key` signed by ca.

    Kubernetes maps a client certificate to user = CN and groups = every O.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    usages = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        f"extendedKeyUsage={','.join(usages)}",
    ]
    sans = [f"DNS:{d}" for d in dns_names] + [f"IP:{ip}" for ip in ip_addresses]
    if sans:
        lines.append(f"subjectAltName={','.join(sans)}")
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "req", "-new", *EC_KEY, "-nodes",
        "-subj", _subject(cn, orgs), "-keyout", str(pair.key), "-out", str(csr),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-sha256", "-in", str(csr),
        "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(CERT_DAYS),
        "-extfile", str(ext), "-out", str(pair.cert),
    )  # fmt: skip
    pair.key.chmod(0o600)
    csr.unlink()
    ext.unlink()
    return pair


def new_rsa_key_pair(directory: Path, name: str) -> CertPair:
    """An RSA key `<name>.key` and its public half `<name>.pub` (service-account token signing).

    `cert` holds the public key here, not a certificate.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / f"{name}.pub", directory / f"{name}.key")
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{RSA_BITS}",
             "-out", str(pair.key))  # fmt: skip
    _openssl("pkey", "-in", str(pair.key), "-pubout", "-out", str(pair.cert))
    pair.key.chmod(0o600)
    return pair
