"""Upstream certificates are verified, against the system or a CA bundle."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client import CollectorRegistry

from app.http import open_http_session
from app.metrics import ProxyMetrics
from app.proxies import ServiceConnectionError, UserServiceProxy
from app.settings import HttpClientSettings, Settings, load_settings
from tests.helpers import service_settings


def write_self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return both paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def server_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Create the HTTPS server's certificate and key once per module."""
    return write_self_signed(tmp_path_factory.mktemp("tls"), "server")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Create a certificate that did not sign the server's."""
    return write_self_signed(tmp_path_factory.mktemp("tls-other"), "other")[0]


@asynccontextmanager
async def serve_https(cert: Path, key: Path) -> AsyncIterator[str]:
    """Serve {"ok": true} over HTTPS on a free loopback port; yield the base URL."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/ping", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = runner.addresses[0][1]
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def ping(url: str, client: HttpClientSettings) -> object:
    """Call GET /ping through a proxy on a session built from ``client``."""
    service = service_settings(url, retries=0)
    settings = Settings(
        user_service=service, interview_service=service, http_client=client
    )
    async with asynccontextmanager(open_http_session)(settings) as session:
        proxy = UserServiceProxy(session, service, ProxyMetrics(CollectorRegistry()))
        return await proxy.get("/ping")


class TestVerification:
    """Certificate checks of the shared session."""

    async def test_unknown_ca_fails(self, server_cert: tuple[Path, Path]) -> None:
        """By default a self-signed certificate fails with ServiceConnectionError."""
        async with serve_https(*server_cert) as url:
            with pytest.raises(ServiceConnectionError) as caught:
                await ping(url, HttpClientSettings())

        assert isinstance(
            caught.value.__cause__, aiohttp.ClientConnectorCertificateError
        )
        assert "certificate" in str(caught.value.details).lower()
        assert caught.value.request_sent is False

    async def test_ca_bundle_trusts(self, server_cert: tuple[Path, Path]) -> None:
        """With ca_bundle naming the certificate, the call succeeds."""
        client = HttpClientSettings(ca_bundle=server_cert[0])

        async with serve_https(*server_cert) as url:
            result = await ping(url, client)

        assert result == {"ok": True}

    async def test_other_ca_fails(
        self, server_cert: tuple[Path, Path], other_ca: Path
    ) -> None:
        """A bundle without the server's issuer does not trust it."""
        client = HttpClientSettings(ca_bundle=other_ca)

        async with serve_https(*server_cert) as url:
            with pytest.raises(ServiceConnectionError):
                await ping(url, client)

    async def test_verify_off_accepts(self, server_cert: tuple[Path, Path]) -> None:
        """verify_tls false, for local testing, accepts any certificate."""
        client = HttpClientSettings(verify_tls=False)

        async with serve_https(*server_cert) as url:
            result = await ping(url, client)

        assert result == {"ok": True}


class TestSettings:
    """The TLS settings themselves."""

    def test_verify_on_by_default(self) -> None:
        """Verification is on and no bundle replaces the system's CAs."""
        client = HttpClientSettings()

        assert client.verify_tls is True
        assert client.ca_bundle is None

    def test_missing_bundle_rejected(self, tmp_path: Path) -> None:
        """A ca_bundle that is not a file stops start-up, naming the variable."""
        with pytest.raises(ValueError, match="HTTP_CLIENT_CA_BUNDLE"):
            load_settings(http_client={"ca_bundle": str(tmp_path / "missing.pem")})
