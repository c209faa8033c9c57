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

import attrs

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
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)

    def name(common_name: str, organization: str | None = None) -> x509.Name:
        attrs_ = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attrs_.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        return x509.Name(attrs_)

    def write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)

    def write_cert(path: Path, cert: x509.Certificate) -> None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("kperf-local-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(subject: x509.Name, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    serving_key, serving_cert = leaf(
        name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    admin_key, admin_cert = leaf(
        name("kperf-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH, []
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

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
    write_cert(creds.ca_cert, ca_cert)
    write_cert(creds.serving_cert, serving_cert)
    write_key(creds.serving_key, serving_key)
    write_cert(creds.admin_cert, admin_cert)
    write_key(creds.admin_key, admin_key)
    write_key(creds.service_account_key, sa_key)
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
