"""kube/client_imports.py: the kubeconfig loader's auth-provider modules (google-auth,
requests-oauthlib, oauthlib) are imported only when used. The tool itself refuses auth-provider users
before it connects, so it never uses them; these tests check that anything that does still gets the
real modules. Each runs in a child interpreter: the stand-ins exist only where ``kubernetes.config``
is first imported by ``connect_cluster``."""

from __future__ import annotations

import base64
import json
import os
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs

import pytest
import yaml

from testing.child_python import run_python


def kubeconfig_with(tmp_path: Path, user: dict[str, object], name: str) -> Path:
    path = tmp_path / name
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def run_after_connecting(tmp_path: Path, body: str, **env: str) -> str:
    """Connect as the tool does (the loader is imported with its stand-ins), then run ``body``."""
    plain = kubeconfig_with(tmp_path, {"token": "t"}, "plain")
    script = textwrap.dedent(
        f"""
        import sys
        from bodywork_action.kube.client import KubeTarget, connect_cluster
        connect_cluster(KubeTarget(kubeconfig={str(plain)!r}), environ={{}})
        """
    ) + textwrap.dedent(body)
    done = run_python(script, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_each_stand_in_gives_the_real_thing_when_used(tmp_path: Path) -> None:
    out = run_after_connecting(
        tmp_path,
        """
        from kubernetes.config import kube_config
        from bodywork_action.kube.client_imports import AUTH_MODULES_IMPORTED_ON_FIRST_USE
        assert not set(AUTH_MODULES_IMPORTED_ON_FIRST_USE) & set(sys.modules), "imported already"
        assert kube_config.google_auth_available

        session = kube_config.OAuth2Session(client_id="x")  # what the oidc refresh calls
        error = kube_config.oauthlib.oauth2.rfc6749.errors.InvalidClientIdError  # what it catches
        request = kube_config.google.auth.transport.requests.Request  # what the gcp refresh calls

        import requests_oauthlib, oauthlib.oauth2.rfc6749.errors, google.auth.transport.requests
        assert type(session) is requests_oauthlib.OAuth2Session
        assert error is oauthlib.oauth2.rfc6749.errors.InvalidClientIdError
        assert request is google.auth.transport.requests.Request
        # the real modules replaced the stand-ins everywhere: in sys.modules and in their packages
        for name in AUTH_MODULES_IMPORTED_ON_FIRST_USE:
            parent, _, child = name.rpartition(".")
            assert type(sys.modules[name]).__name__ == "module", name
            if parent:
                assert getattr(sys.modules[parent], child) is sys.modules[name], name
        print("ok")
        """,
    )
    assert out.strip() == "ok"


class IdentityProvider(BaseHTTPRequestHandler):
    """An OIDC provider on 127.0.0.1: its discovery document and a token endpoint that refreshes."""

    refreshed_with: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        if self.path != "/.well-known/openid-configuration":
            self.send_error(404)
            return
        host, port = self.server.server_address[:2]
        self.answer({"issuer": f"http://{host}:{port}", "token_endpoint": f"http://{host}:{port}/token"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        self.refreshed_with.append(form)
        self.answer(
            {"access_token": "a", "token_type": "Bearer", "id_token": "new-id-token", "refresh_token": "r2"}
        )

    def answer(self, document: dict[str, str]) -> None:
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def identity_provider() -> Iterator[str]:
    IdentityProvider.refreshed_with = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), IdentityProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_an_expired_oidc_token_is_still_refreshed_through_the_stand_ins(
    tmp_path: Path, identity_provider: str
) -> None:
    def part(document: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    expired = ".".join([part({"alg": "none"}), part({"exp": 1_000_000_000}), "signature"])
    oidc = kubeconfig_with(
        tmp_path,
        {
            "auth-provider": {
                "name": "oidc",
                "config": {
                    "client-id": "bodywork",
                    "client-secret": "s",
                    "id-token": expired,
                    "idp-issuer-url": identity_provider,
                    "refresh-token": "r1",
                },
            }
        },
        "oidc",
    )
    out = run_after_connecting(
        tmp_path,
        f"""
        from kubernetes import client, config
        configuration = client.Configuration()
        config.load_kube_config(
            config_file={str(oidc)!r}, client_configuration=configuration, persist_config=False
        )
        print(configuration.api_key["BearerToken"])
        """,
        OAUTHLIB_INSECURE_TRANSPORT="1",  # the provider here is plain http on 127.0.0.1
    )
    assert out.strip() == "Bearer new-id-token"
    [form] = IdentityProvider.refreshed_with
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["r1"]
