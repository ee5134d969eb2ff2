"""``idrs serve --tls-cert --tls-key``: HTTPS end to end, and bad TLS input refused up front.

A throwaway self-signed certificate for 127.0.0.1 is generated at test time with
``cryptography`` (no key is ever committed). ``idrs init`` then ``idrs serve`` run as
subprocesses (``python -m idrs``) on a free loopback port against a fresh IDRS_HOME and
SQLite database; the client trusts only that certificate. Over HTTPS every answer carries
Strict-Transport-Security and the sign-in cookies are Secure; over plain HTTP neither.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import httpx
import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests import ready

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return path


def _self_signed(key: ec.EllipticCurvePrivateKey, path: Path, *, days: int = 2) -> Path:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idrs test 127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(db: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "IDRS_DATABASE_URL": f"sqlite:///{db}", "IDRS_HOME": str(home)}


def _idrs(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "idrs", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]


def _start(env: dict[str, str], *extra: str, stdout: Path | None = None) -> Server:
    port = _free_port()
    quiet = [] if stdout is not None else ["--no-access-log"]
    out = open(stdout, "wb") if stdout is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "idrs", "serve", "--port", str(port), *quiet, *extra],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.PIPE,
    )
    if stdout is not None:
        out.close()  # the child has its own descriptor
    ready.serving(proc, port)
    scheme = "https" if "--tls-cert" in extra else "http"
    return Server(f"{scheme}://127.0.0.1:{port}", proc)


def _stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@dataclass
class World:
    env: dict[str, str]
    cert: Path
    key: Path
    admin: dict[str, str]
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("tls")
    key = _key()
    cert = _self_signed(key, tmp / "cert.pem")
    key_path = _write_key(key, tmp / "key.pem")
    env = _env(tmp / "idrs.db", tmp / "home")
    r = _idrs(env, "init")
    assert r.returncode == 0, r.stderr
    return World(env, cert, key_path, json.loads(r.stdout), tmp)


@pytest.fixture(scope="module")
def https(world: World) -> Iterator[Server]:
    server = _start(world.env, "--tls-cert", str(world.cert), "--tls-key", str(world.key))
    yield server
    _stop(server)


@pytest.fixture(scope="module")
def plain(world: World) -> Iterator[Server]:
    server = _start(world.env)
    yield server
    _stop(server)


def _client(world: World, base: str) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(world.cert))  # trusts only the test certificate
    return httpx.Client(base_url=base, verify=ctx, follow_redirects=False, timeout=10)


def _cookie(headers: httpx.Headers, name: str) -> str:
    found = [h for h in headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, headers.get_list("set-cookie")
    return found[0]


def _attrs(set_cookie: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in set_cookie.split(";")[1:]}


def test_https_sends_hsts_and_secure_cookies_through_a_real_sign_in(world, https):
    with _client(world, https.url) as c:
        page = c.get("/signin")
        assert page.status_code == 200
        assert page.url.scheme == "https"
        assert page.headers["strict-transport-security"].startswith("max-age=")
        pre = _cookie(page.headers, "idrs_csrf")
        assert {"secure", "httponly", "samesite"} <= _attrs(pre)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        signed = c.post(
            "/signin",
            data={
                "csrf": csrf.group(1),
                "seid": world.admin["seid"],
                "password": world.admin["password"],
                "otp": pyotp.TOTP(world.admin["totp_secret"]).now(),
                "next": "/research",
            },
        )
        assert signed.status_code == 303, signed.text[:500]
        session = _cookie(signed.headers, "idrs_session")
        assert {"secure", "httponly", "samesite"} <= _attrs(session)
        assert "samesite=strict" in session.lower()
        assert "strict-transport-security" in signed.headers
        # The API answers over the same TLS listener with the same header.
        api = c.get("/api/v1/openapi.json")
        assert api.status_code == 200
        assert "strict-transport-security" in api.headers


def test_https_listener_does_not_speak_plain_http(world, https):
    port = https.url.rsplit(":", 1)[1]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/signin", timeout=5)


def test_client_that_does_not_trust_the_certificate_is_refused_by_its_own_tls_check(https):
    with pytest.raises(httpx.ConnectError):
        httpx.get(https.url + "/signin", timeout=5)  # the system CAs do not vouch for it


def test_plain_http_sends_no_hsts_and_no_secure_cookie(world, plain):
    with httpx.Client(base_url=plain.url, timeout=10) as c:
        page = c.get("/signin")
        assert page.status_code == 200
        assert "strict-transport-security" not in page.headers
        pre = _cookie(page.headers, "idrs_csrf")
        assert "secure" not in _attrs(pre)
        assert "httponly" in _attrs(pre)


def test_several_workers_serve_https(world):
    server = _start(
        world.env, "--tls-cert", str(world.cert), "--tls-key", str(world.key), "--workers", "2"
    )
    try:
        with _client(world, server.url) as c:
            answers = [c.get("/signin") for _ in range(6)]
        assert {a.status_code for a in answers} == {200}
        assert all("strict-transport-security" in a.headers for a in answers)
    finally:
        _stop(server)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_access_log_shows_no_tin_name_or_case(world, tmp_path, workers):
    log = tmp_path / "access.log"
    server = _start(world.env, "--workers", workers, stdout=log)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            tin_call = c.get("/api/v1/accounts/999-49-1234/ENMOD", params={"case": "CASE-7477"})
            name_call = c.get("/api/v1/accounts/ZEBULON QUIMBY/NAMES", params={"place": "OH"})
            page = c.get("/signin", params={"next": "/research"})
            # a TIN where a page or resource name would be (a mistyped URL) is kept out too
            stray = [c.get("/999-49-1235"), c.get("/api/v1/999491236"), c.get("/x999491237")]
        assert tin_call.status_code == 401 and name_call.status_code == 401
        assert page.status_code == 200 and {r.status_code for r in stray} == {404}
    finally:
        _stop(server)
    text = log.read_text()
    assert '"GET /api/v1/accounts/*?* HTTP/1.1" 401' in text  # the requests were logged
    assert '"GET /signin?* HTTP/1.1" 200' in text
    assert '"GET /:tin HTTP/1.1" 404' in text and '"GET /api/v1/:tin HTTP/1.1" 404' in text
    for secret in ("999-49-1234", "999491234", "CASE-7477", "ZEBULON", "QUIMBY", "place=",
                   "999-49-1235", "999491236", "999491237"):
        assert secret not in text


def test_several_workers_answer_without_the_delayed_ack_stall(world):
    """With --workers the listening socket is shared by processes; each connection must
    still get TCP_NODELAY, or every answer written as head + body waits ~40 ms for the
    client's delayed ACK (Nagle). Sequential keep-alive requests for a small answer (a
    large one fills whole segments and hides it) show it plainly."""
    # the per-address throttle of unauthenticated research would answer 429 after ten calls
    server = _start({**world.env, "IDRS_UNAUTHENTICATED_RATE": "off"}, "--workers", "2")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            c.get("/signin")  # warm both the connection and the worker
            times = []
            for _ in range(41):
                t0 = time.perf_counter()
                assert c.get("/api/v1/accounts/999-49-1234/ENMOD").status_code == 401
                times.append(time.perf_counter() - t0)
        # With the stall every answer waits for the client's delayed-ACK timer (a kernel
        # floor near 40 ms), however idle the machine; without it most answers take a few
        # milliseconds. The fastest of 41 therefore tells the two apart even on a loaded
        # machine, where a median would measure the load instead.
        fastest = min(times)
        assert fastest < 0.030, f"fastest keep-alive request took {fastest * 1000:.1f} ms"
    finally:
        _stop(server)


# -- bad input: refused before anything opens, writes or listens ------------------------------


def _refused(world: World, *args: str) -> str:
    """Run ``idrs serve`` against a database that does not exist yet; it must stay absent."""
    db = world.tmp / f"never-{time.monotonic_ns()}.db"
    port = _free_port()
    env = _env(db, world.tmp / "home")
    r = _idrs(env, "serve", "--port", str(port), *args)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert not db.exists()
    assert not ready.listening(port)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_cert_without_key_is_refused_naming_the_missing_option(world):
    msg = _refused(world, "--tls-cert", str(world.cert))
    assert "--tls-key" in msg


def test_key_without_cert_is_refused_naming_the_missing_option(world):
    msg = _refused(world, "--tls-key", str(world.key))
    assert "--tls-cert needs" not in msg and "--tls-key needs --tls-cert" in msg


def test_nonexistent_certificate_file_is_refused(world):
    missing = world.tmp / "no-such-cert.pem"
    msg = _refused(world, "--tls-cert", str(missing), "--tls-key", str(world.key))
    assert msg.startswith("error: --tls-cert:") and str(missing) in msg


def test_nonexistent_key_file_is_refused(world):
    missing = world.tmp / "no-such-key.pem"
    msg = _refused(world, "--tls-cert", str(world.cert), "--tls-key", str(missing))
    assert msg.startswith("error: --tls-key:") and str(missing) in msg


def test_a_directory_is_not_a_certificate(world):
    msg = _refused(world, "--tls-cert", str(world.tmp), "--tls-key", str(world.key))
    assert msg.startswith("error: --tls-cert:")


def test_garbage_certificate_is_refused(world):
    junk = world.tmp / "junk-cert.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    msg = _refused(world, "--tls-cert", str(junk), "--tls-key", str(world.key))
    assert msg.startswith("error: --tls-cert:") and "not a PEM certificate" in msg


def test_certificate_given_as_key_is_refused(world):
    msg = _refused(world, "--tls-cert", str(world.cert), "--tls-key", str(world.cert))
    assert msg.startswith("error: --tls-key:") and "not a PEM private key" in msg


def test_key_of_another_certificate_is_refused(world):
    other = _write_key(_key(), world.tmp / "other-key.pem")
    msg = _refused(world, "--tls-cert", str(world.cert), "--tls-key", str(other))
    assert msg.startswith("error: --tls-key:") and "not the key of the certificate" in msg


def test_encrypted_key_is_refused(world):
    key = _key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    path = world.tmp / "encrypted-key.pem"
    path.write_bytes(pem)
    cert = _self_signed(key, world.tmp / "encrypted-cert.pem")
    msg = _refused(world, "--tls-cert", str(cert), "--tls-key", str(path))
    assert msg.startswith("error: --tls-key:") and "encrypted" in msg


def test_demo_refuses_bad_tls_before_writing(world):
    home = world.tmp / "demo-home"
    db = world.tmp / "demo.db"
    env = _env(db, home)
    r = _idrs(env, "demo", "--no-serve", "--tls-cert", str(world.cert))
    assert r.returncode == 1 and "--tls-key" in r.stderr
    assert not db.exists() and not home.exists()
