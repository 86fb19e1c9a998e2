"""Self-signed TLS material for ``coffer serve --tls`` when no certificate is given.

A private CA (ECDSA P-256, 10 years) signs a server certificate for localhost, 127.0.0.1 and
::1 (ECDSA P-256, 825 days: the longest lifetime Apple's TLS clients accept). Clients trust the
CA file (``AWS_CA_BUNDLE``); the server presents leaf + CA. Private keys are written 0600.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TLSFiles", "ensure_self_signed"]


@dataclass(frozen=True, slots=True)
class TLSFiles:
    ca: Path
    cert: Path          # leaf followed by the CA certificate
    key: Path
    created: bool


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Coffer"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ensure_self_signed(directory: Path, hosts: tuple[str, ...] = ("localhost",)) -> TLSFiles:
    """Create (once) a CA and a server certificate under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = TLSFiles(ca=directory / "ca.pem", cert=directory / "server.pem",
                     key=directory / "server-key.pem", created=False)
    if files.ca.exists() and files.cert.exists() and files.key.exists():
        return files
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder()
               .subject_name(_name("Coffer local CA")).issuer_name(_name("Coffer local CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                              critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys((*hosts, "localhost")):
        names.append(x509.DNSName(host))
        names.append(x509.DNSName(f"*.{host}"))
    names += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
              x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (x509.CertificateBuilder()
            .subject_name(_name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    _write(files.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()), 0o600)
    _write(files.cert, cert.public_bytes(pem) + ca_cert.public_bytes(pem), 0o600)
    _write(files.ca, ca_cert.public_bytes(pem), 0o600)
    # The CA key is not kept: nothing else is ever signed with it.
    return TLSFiles(ca=files.ca, cert=files.cert, key=files.key, created=True)
