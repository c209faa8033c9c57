"""Which transport runs a spec: the native one only for what it can carry, libcurl for the rest,
``KPERF_TRANSPORT`` to force one. And the extension's clock, which must be Python's."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kperf_core.engine import native_transport
from kperf_core.engine.native_transport import LIBCURL, NATIVE, TransportChoice, choose_transport
from kperf_core.errors import ConfigError
from kperf_core.kube import ClusterEndpoint
from kperf_core.kube_auth import Credentials, StaticCredentials, TokenFileCredentials
from kperf_core.request_types import BuildContext, RequestType, WireRequest, wire_request

_REF = {"version": "v1", "resource": "configmaps", "namespace": "default"}


def _endpoint(**changes: Any) -> ClusterEndpoint:
    fields: dict[str, Any] = {
        "server": "https://127.0.0.1:6443",
        "ca_pem": b"-----BEGIN CERTIFICATE-----\n",
        "insecure_skip_tls_verify": False,
        "client_cert_pem": None,
        "client_key_pem": None,
        "tls_server_name": None,
        "credentials": StaticCredentials(header="Bearer t"),
        "source": "test",
        **changes,
    }
    return ClusterEndpoint(**fields)


class _Undeclared(RequestType):
    """A third-party type that does not say whether its requests are plain."""

    name = "thirdParty"
    config_type = dict

    def build(self) -> WireRequest:
        return wire_request("GET", "/api/v1/namespaces")


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The choice as it is made where the extension is built (it may not be here)."""
    monkeypatch.setattr(native_transport, "native_installed", lambda: True)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("installed")
def test_gets_and_lists_run_on_the_native_transport(
    kperf_request_type: Callable[..., RequestType],
) -> None:
    instances = [
        kperf_request_type("staleGet", **_REF, name="a"),
        kperf_request_type("quorumList", **_REF, limit=2, paginate=True),
        kperf_request_type("staleList", **_REF),
    ]
    assert choose_transport(instances, _endpoint(), environ={}) == TransportChoice(NATIVE)
    cert_only = _endpoint(credentials=Credentials(), client_cert_pem=b"c", client_key_pem=b"k")
    assert choose_transport(instances, cert_only, environ={}).name == NATIVE


@pytest.mark.usefixtures("installed")
def test_streams_background_sessions_and_undeclared_types_stay_on_libcurl(
    kperf_request_type: Callable[..., RequestType],
) -> None:
    get = kperf_request_type("staleGet", **_REF, name="a")
    watch = kperf_request_type("watch", **_REF)
    choice = choose_transport([get, watch], _endpoint(), environ={})
    assert choice.name == LIBCURL
    assert "watch opens background sessions" in choice.reason
    undeclared = _Undeclared({}, BuildContext())
    choice = choose_transport([get, undeclared], _endpoint(), environ={})
    assert choice == TransportChoice(
        LIBCURL, "thirdParty sends requests other than plain exchanges (streams)"
    )


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"server": "http://127.0.0.1:8080"}, "the server is not https"),
        ({"ca_pem": None}, "no CA"),
        ({"insecure_skip_tls_verify": True}, "no CA"),
        ({"tls_server_name": "kubernetes"}, "tls-server-name"),
        ({"credentials": TokenFileCredentials(Path("/nonexistent"), "t", "x")}, "refresh"),
    ],
)
def test_endpoints_the_native_transport_cannot_serve_stay_on_libcurl(
    changes: dict[str, Any], reason: str, kperf_request_type: Callable[..., RequestType]
) -> None:
    get = kperf_request_type("staleGet", **_REF, name="a")
    choice = choose_transport([get], _endpoint(**changes), environ={})
    assert choice.name == LIBCURL
    assert reason in choice.reason


@pytest.mark.usefixtures("installed")
def test_a_proxy_in_the_environment_keeps_libcurl(
    monkeypatch: pytest.MonkeyPatch, kperf_request_type: Callable[..., RequestType]
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    choice = choose_transport(
        [kperf_request_type("staleGet", **_REF, name="a")], _endpoint(), environ={}
    )
    assert choice == TransportChoice(LIBCURL, "a proxy is set in the environment")


@pytest.mark.usefixtures("installed")
def test_kperf_transport_forces_one_or_says_why_it_cannot(
    kperf_request_type: Callable[..., RequestType],
) -> None:
    get = kperf_request_type("staleGet", **_REF, name="a")
    assert choose_transport([get], _endpoint(), environ={"KPERF_TRANSPORT": "curl"}) == (
        TransportChoice(LIBCURL, "KPERF_TRANSPORT=curl")
    )
    assert choose_transport([get], _endpoint(), environ={"KPERF_TRANSPORT": "native"}).name == (
        NATIVE
    )
    assert choose_transport([get], _endpoint(), environ={"KPERF_TRANSPORT": "auto"}).name == NATIVE
    watch = kperf_request_type("watch", **_REF)
    with pytest.raises(ConfigError, match="KPERF_TRANSPORT=native, but watch opens background"):
        choose_transport([get, watch], _endpoint(), environ={"KPERF_TRANSPORT": "native"})
    with pytest.raises(ConfigError, match="KPERF_TRANSPORT='fast': expected curl, native or auto"):
        choose_transport([get], _endpoint(), environ={"KPERF_TRANSPORT": "fast"})


def test_without_the_extension_every_spec_runs_on_libcurl(
    monkeypatch: pytest.MonkeyPatch, kperf_request_type: Callable[..., RequestType]
) -> None:
    monkeypatch.setattr(native_transport, "native_installed", lambda: False)
    get = kperf_request_type("staleGet", **_REF, name="a")
    choice = choose_transport([get], _endpoint(), environ={})
    assert choice.name == LIBCURL
    assert "not installed" in choice.reason
    with pytest.raises(ConfigError, match="kperf_native extension is not installed"):
        choose_transport([get], _endpoint(), environ={"KPERF_TRANSPORT": "native"})


def test_the_extensions_clock_is_perf_counter() -> None:
    kperf_native = pytest.importorskip("kperf_native")
    before = time.perf_counter()
    native = kperf_native.clock()
    after = time.perf_counter()
    # completion times from Rust are subtracted from start times Python took
    assert before <= native <= after
