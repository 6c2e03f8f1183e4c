"""Error translation: every aiohttp client error becomes a ServiceProxyError."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from app.proxies import (
    ErrorKind,
    ServiceConnectionError,
    ServiceIncompleteBodyError,
    ServiceProxyError,
    ServiceTimeoutError,
)
from app.proxies.wire import CallTarget, translate_client_error

TARGET = CallTarget("user-service", "GET", "/users/1")
KEY = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)


def all_subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    """Return every subclass of ``cls``, however deep."""
    found: set[type[BaseException]] = set()
    for child in cls.__subclasses__():
        found.add(child)
        found |= all_subclasses(child)
    return found


def instantiate(exc_class: type[BaseException]) -> BaseException:
    """Build an instance of an aiohttp error class from the first arguments it takes."""
    request_info = aiohttp.RequestInfo(
        URL("http://127.0.0.1:1/x"), "GET", CIMultiDictProxy(CIMultiDict()), URL()
    )
    candidates: list[tuple[object, ...]] = [
        (KEY, OSError(111, "refused")),
        (b"expected", b"got", "127.0.0.1", 1),
        (KEY, ssl.SSLCertVerificationError()),
        ("/tmp/socket", KEY, OSError(2, "missing")),
        (request_info, ()),
        (URL("http://127.0.0.1:1/x"),),
        ("message",),
        (),
    ]
    for args in candidates:
        try:
            exc = exc_class(*args)
            str(exc)
        except Exception:
            continue
        return exc
    message = f"no known constructor signature fits {exc_class.__name__}"
    raise TypeError(message)


CASES: list[tuple[BaseException, type[ServiceProxyError]]] = [
    (TimeoutError(), ServiceTimeoutError),
    (aiohttp.ServerTimeoutError("read"), ServiceTimeoutError),
    (aiohttp.ConnectionTimeoutError("connect"), ServiceTimeoutError),
    (aiohttp.SocketTimeoutError("sock"), ServiceTimeoutError),
    (aiohttp.ClientPayloadError("cut"), ServiceIncompleteBodyError),
    (
        aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")),
        ServiceConnectionError,
    ),
    (
        aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "Name does not resolve")),
        ServiceConnectionError,
    ),
    (
        aiohttp.ClientConnectorCertificateError(KEY, ssl.SSLCertVerificationError()),
        ServiceConnectionError,
    ),
    (aiohttp.ServerDisconnectedError(), ServiceConnectionError),
    (aiohttp.ClientOSError(104, "Connection reset by peer"), ServiceConnectionError),
    (aiohttp.ClientConnectionResetError("reset"), ServiceConnectionError),
    (aiohttp.ClientConnectionError("broken"), ServiceConnectionError),
    (aiohttp.ClientError("anything"), ServiceConnectionError),
    (ConnectionResetError(104, "reset"), ServiceConnectionError),
]


class TestTranslation:
    """translate_client_error picks the closest error class."""

    @pytest.mark.parametrize(("exc", "expected"), CASES)
    def test_maps_to_expected_class(
        self, exc: BaseException, expected: type[ServiceProxyError]
    ) -> None:
        """Each aiohttp or socket error maps to its documented class."""
        error = translate_client_error(TARGET, exc)

        assert type(error) is expected
        assert error.service_name == "user-service"
        assert error.status_code is None
        assert error.is_network_error

    def test_connect_failure_marks_request_unsent(self) -> None:
        """A failed connect means the request never left."""
        exc = aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "no"))

        error = translate_client_error(TARGET, exc)

        assert isinstance(error, ServiceConnectionError)
        assert not error.request_sent

    def test_reset_marks_request_sent(self) -> None:
        """A reset after connecting may have delivered the request."""
        error = translate_client_error(TARGET, aiohttp.ServerDisconnectedError())

        assert isinstance(error, ServiceConnectionError)
        assert error.request_sent

    @pytest.mark.parametrize(
        "exc_class",
        sorted(all_subclasses(aiohttp.ClientError), key=str),
    )
    def test_every_client_error_class_maps(
        self, exc_class: type[BaseException]
    ) -> None:
        """No aiohttp ClientError subclass escapes translation."""
        exc = instantiate(exc_class)

        error = translate_client_error(TARGET, exc)

        assert isinstance(error, ServiceProxyError)
        assert error.kind in set(ErrorKind)


def test_certificate_failure_is_not_retryable() -> None:
    """A TLS certificate failure is a connection error that retries cannot fix."""
    exc = aiohttp.ClientConnectorCertificateError(KEY, ssl.SSLCertVerificationError())

    error = translate_client_error(TARGET, exc)

    assert isinstance(error, ServiceConnectionError)
    assert not error.retryable


def test_refused_connection_stays_retryable() -> None:
    """A refused connection may succeed on the next attempt."""
    exc = aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused"))

    assert translate_client_error(TARGET, exc).retryable
