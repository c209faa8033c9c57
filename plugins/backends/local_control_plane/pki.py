"""Certificates and keys for the local control plane.

One CA signs the apiserver's serving certificate (so clients verify TLS for real, no
``insecure-skip-tls-verify``) and an admin client certificate in group ``system:masters``; a
separate RSA key signs service-account tokens; a static token gives a second, token-based identity.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

VALIDITY = datetime.timedelta(days=365)


@attrs.frozen
class ClusterCredentials:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path
    token_file: Path
    admin_token: str


def create_credentials(pki_dir: Path) -> ClusterCredentials:
    """Write every certificate, key and token the control plane needs into ``pki_dir``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    pki_dir.mkdir(parents=True, exist_ok=True)
    creds = ClusterCredentials(
        ca_cert=pki_dir / "ca.crt",
        serving_cert=pki_dir / "apiserver.crt",
        serving_key=pki_dir / "apiserver.key",
        admin_cert=pki_dir / "admin.crt",
        admin_key=pki_dir / "admin.key",
        service_account_key=pki_dir / "sa.key",
        service_account_pub=pki_dir / "sa.pub",
        token_file=pki_dir / "tokens.csv",
        admin_token=secrets.token_hex(24),
    )
    ca = _CertificateAuthority("kperf-local-ca")
    _write_cert(creds.ca_cert, ca.cert)
    ca.issue(
        creds.serving_cert,
        creds.serving_key,
        _name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    ca.issue(
        creds.admin_cert,
        creds.admin_key,
        _name("kperf-admin", "system:masters"),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    # service-account tokens are signed with RSA: the apiserver's default signing algorithm (RS256)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(creds.service_account_key, sa_key)
    creds.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    # token,user,uid,"group1,group2"
    creds.token_file.write_text(
        f'{creds.admin_token},kperf-token-admin,kperf-token-admin,"system:masters"\n'
    )
    creds.token_file.chmod(0o600)
    return creds


class _CertificateAuthority:
    """A self-signed CA (EC P-256) that issues leaf certificates, all valid for :data:`VALIDITY`.

    ``cryptography`` is imported when a CA is made, not when the plugin loads: every kperf command
    loads this plugin, few create a control plane.
    """

    def __init__(self, common_name: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        # backdated a little: a clock that differs by seconds between processes must not matter
        self.not_before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(common_name)
        usage = x509.KeyUsage(
            digital_signature=True,
            key_cert_sign=True,
            crl_sign=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
        )
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self,
        cert_path: Path,
        key_path: Path,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        san: list[x509.GeneralName] | None = None,
    ) -> None:
        """A new key and a certificate for ``subject``, signed by this CA, written to the paths."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            self._builder(subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        _write_cert(cert_path, builder.sign(self.key, hashes.SHA256()))
        _write_key(key_path, key)

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        from cryptography import x509

        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_before + VALIDITY)
        )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
