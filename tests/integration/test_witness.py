"""Witnesses (C2SP tlog-witness, tlog-cosignature): cosigning, refusing forks and split views.

Real witness servers run in the test process (uvicorn on a socket of their own); one test
runs ``idrs witness serve`` as a process and restarts it. The published checkpoint is
checked by ``SpecVerifier``, written from the specifications alone.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import text

from idrs.api.app import create_app
from idrs.audit import log, merkle, service, witness, witnesses
from idrs.audit.checkpoint import WITNESS_FILE as LOCAL_COPY
from idrs.audit.checkpoint import Checkpoint, Signer, load_signer, split_note
from idrs.audit.cosignature import CosignerKey
from idrs.audit.export import ExportInvalid, verify_export
from idrs.context import App

from ..ready import serving, until
from .audit_helpers import drop_triggers, entry, prepare
from .witness_helpers import Served, SpecVerifier


@pytest.fixture
def pair(app: App, tmp_path: Path):
    """Two witnesses (an inspector general, a court) trusting this log, configured on it."""
    prepare(app)
    log_vkey = load_signer(app.settings.home).vkey()
    served = []
    for name in ("oig.example/w1", "court.example/w2"):
        d = tmp_path / name.split(".")[0]
        vkey = witness.init(d, name, [log_vkey])
        s = Served(d)
        s.vkey = vkey  # type: ignore[attr-defined]
        served.append(s)
        service.add_witness(app, name, s.url, vkey, "os:test")
    yield served
    until(lambda: witnesses.idle(app.engine))
    for s in served:
        s.stop()


@pytest.fixture
def lone(app: App, tmp_path: Path):
    """A witness trusting this log that the log does not submit to: the test speaks to it."""
    prepare(app)
    d = tmp_path / "lone"
    vkey = witness.init(d, "lone.example/w", [load_signer(app.settings.home).vkey()])
    s = Served(d)
    s.vkey = vkey  # type: ignore[attr-defined]
    yield s
    s.stop()


def grow(app: App, n: int, tag: str = "") -> None:
    for i in range(n):
        e = entry(app, i)
        e["object"]["tag"] = tag
        log.append(app.engine, e)


def body_of(note: str) -> str:
    return split_note(note)[0]


def test_a_sequence_is_cosigned_and_an_independent_verifier_accepts_it(app: App, pair) -> None:
    # the checkpoints are the ones this test signs: no tail checkpoint slips in between on a
    # slow machine (the published one would then be newer than the one just submitted), and
    # no timed one either (the appender signs every IDRS_CHECKPOINT_EVERY_SECONDS after its
    # first append: a run slower than a minute got an uncosigned checkpoint published)
    app.settings = app.settings.model_copy(
        update={"checkpoint_max_unsigned_seconds": 3600, "checkpoint_every_seconds": 3600}
    )
    log.configure(app.engine, app.settings)
    log_vkey = load_signer(app.settings.home).vkey()
    policy = SpecVerifier(log_vkey, [s.vkey for s in pair], k=2)
    sizes = []
    for step in range(4):
        grow(app, 3 + step)
        note = service.checkpoint_now(app)
        results = witnesses.submit(app.engine)
        assert [r["status"] for r in results] == [200, 200], results
        published = TestClient(create_app(app)).get("/api/v1/audit/checkpoint")
        assert published.status_code == 200
        origin, size, root = policy.verify(published.text)
        assert origin == app.settings.audit_origin
        signed = Checkpoint.parse(body_of(note)).size
        # the one just signed, or (something of the system's own appended and signed since,
        # on a slow machine) a newer one: never an older one, always cosigned by both
        assert size >= signed
        if size == signed:
            assert published.text.startswith(note)
        sizes.append(size)
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    # each witness remembers the newest size it cosigned, per origin, in its own state file
    for s in pair:
        state = witness.current_state(s.dir)
        assert state["logs"][app.settings.audit_origin]["size"] == sizes[-1]
        assert oct((s.dir / witness.KEY_FILE).stat().st_mode & 0o777) == "0o600"
    keys = [s.vkey for s in pair]
    result = service.verify(app, "os:test", witness_keys=keys, witness_min=2)
    assert result["ok"], result


def test_checkpoints_signed_by_the_appender_are_cosigned_in_the_background(app: App, pair) -> None:
    app.settings.checkpoint_every_entries = 5
    log.configure(app.engine, app.settings)
    grow(app, 12)  # the appender signs at 5 and 10; nobody calls submit
    policy = SpecVerifier(load_signer(app.settings.home).vkey(), [s.vkey for s in pair], k=2)

    def published_and_cosigned() -> bool:
        try:
            policy.verify(service.latest_checkpoint(app))
        except AssertionError:
            return False
        return True

    until(published_and_cosigned)


def fork(app: App, keep: int, regrow: int) -> str:
    """What an attacker with the database (and the host) does: cut the log back to ``keep``
    entries, re-grow it with other entries and have the system sign the result."""
    until(lambda: witnesses.idle(app.engine))
    drop_triggers(app)
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE idx >= :k"), {"k": keep})
        conn.execute(text("DELETE FROM audit_node"))
        conn.execute(text("DELETE FROM audit_checkpoint"))
        conn.execute(text("DELETE FROM audit_cosignature"))
        rows = conn.execute(text("SELECT idx, leaf_hash FROM audit_entry ORDER BY idx")).all()
    # rebuild the node cache so that the forked log is self-consistent
    hashes = [bytes(h) for _, h in rows]
    made = merkle.append_nodes(0, hashes, {}.__getitem__)
    from idrs.audit.models import MIN_STORED_LEVEL, node_key

    with app.engine.begin() as conn:
        for (lvl, i), h in made:
            if lvl >= MIN_STORED_LEVEL:
                conn.execute(
                    text("INSERT INTO audit_node (id, hash) VALUES (:k, :h)"),
                    {"k": node_key(lvl, i), "h": h},
                )
    (app.settings.home / LOCAL_COPY).unlink(missing_ok=True)
    log._appenders.clear()  # the running appender's cached tree edge belongs to the old log
    grow(app, regrow, tag="forked")
    return service.checkpoint_now(app)


@pytest.mark.parametrize("regrow", [5, 20], ids=["shorter", "longer"])
def test_a_forked_log_is_refused_by_every_witness(app: App, pair, regrow: int) -> None:
    grow(app, 20)
    service.checkpoint_now(app)
    assert [r["status"] for r in witnesses.submit(app.engine)] == [200, 200]
    honest = service.latest_checkpoint(app)
    honest_size = Checkpoint.parse(body_of(honest)).size  # 20 + the two witness:add records

    forked = fork(app, keep=10, regrow=regrow)
    assert Checkpoint.parse(body_of(forked)).size == 10 + regrow
    results = witnesses.submit(app.engine)
    assert {r["witness"] for r in results} == {"oig.example/w1", "court.example/w2"}
    assert all(r["status"] in (409, 422) for r in results), results
    published = service.latest_checkpoint(app)
    assert published == forked  # no cosignature to publish
    keys = [s.vkey for s in pair]
    with pytest.raises(AssertionError):
        SpecVerifier(load_signer(app.settings.home).vkey(), keys, k=1).verify(published)
    result = service.verify(app, "os:test", witness_keys=keys, witness_min=1)
    assert not result["ok"]
    assert "witnesses" in result["first_problem"] or any(
        "witnesses" in p["reason"] for p in result["problems"]
    )
    # the witnesses kept the honest history and wrote the refusal down as evidence
    for s in pair:
        state = witness.current_state(s.dir)
        assert state["logs"][app.settings.audit_origin]["size"] == honest_size
        refused = (s.dir / witness.REFUSED_FILE).read_text()
        assert str(10 + regrow) in refused
    assert honest != published


def post(url: str, body: str) -> httpx.Response:
    return httpx.post(url + "/add-checkpoint", content=body.encode(), timeout=10)


def request_body(old: int, proof: list[bytes], note: str) -> str:
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return "\n".join(lines) + "\n\n" + note


def test_the_http_protocol_answers_as_the_specification_says(app: App, lone) -> None:
    w = lone
    grow(app, 8)
    note8 = service.checkpoint_now(app)
    assert post(w.url, request_body(0, [], note8)).status_code == 200
    grow(app, 5)
    note13 = service.checkpoint_now(app)
    # a wrong old size: 409 and the size the witness cosigned, as text/x.tlog.size
    r = post(w.url, request_body(3, [], note13))
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("text/x.tlog.size")
    assert r.text == "8\n"
    # a proof that does not verify: 422
    r = post(w.url, request_body(8, [b"\x00" * 32] * 3, note13))
    assert r.status_code == 422
    # old above the checkpoint's size: 400
    assert post(w.url, request_body(20, [], note13)).status_code == 400
    # malformed bodies: 400 (and never a cosignature)
    for bad in (
        "",
        "old 8\n",
        "old 08\n\n" + note13,
        "new 8\n\n" + note13,
        "old 8\n!!\n\n" + note13,
    ):
        assert post(w.url, bad).status_code == 400, bad
    too_many = request_body(8, [b"\x01" * 32] * 64, note13)
    assert post(w.url, too_many).status_code == 400
    assert httpx.post(w.url + "/add-checkpoint", content=b"x" * 70_000).status_code == 413
    # a checkpoint of an origin the witness does not know: 404
    other = load_signer(app.settings.home)
    stranger = other.sign(Checkpoint("other.example/log", 13, b"\x02" * 32).text())
    assert post(w.url, request_body(0, [], stranger)).status_code == 404
    # the right origin signed by another key: 403
    impostor = Signer(app.settings.audit_origin, Ed25519PrivateKey.generate())
    forged = impostor.sign(body_of(note13))
    assert post(w.url, request_body(8, [], forged)).status_code == 403
    # a split view: the same size with another root: 409
    split = other.sign(Checkpoint(app.settings.audit_origin, 8, b"\x03" * 32).text())
    r = post(w.url, request_body(8, [], split))
    assert r.status_code == 409 and r.text == "8\n"
    # and the honest step still works, answering signature lines only
    proof = service.consistency_proof(app, 8, 13)["hashes"]
    r = post(w.url, request_body(8, [bytes.fromhex(h) for h in proof], note13))
    assert r.status_code == 200
    key = CosignerKey.parse(w.vkey)
    assert r.text.endswith("\n") and all(ln.startswith("\u2014 ") for ln in r.text.splitlines())
    assert key.check_line(body_of(note13), r.text.splitlines()[0]) is not None


def test_concurrent_submissions_cannot_both_advance(app: App, lone) -> None:
    """Different checkpoints all claiming old 0 at once: exactly one is cosigned."""
    w = lone
    signer = load_signer(app.settings.home)
    notes = [
        signer.sign(Checkpoint(app.settings.audit_origin, 5 + i, bytes([i]) * 32).text())
        for i in range(8)
    ]
    answers: list[int] = []
    barrier = threading.Barrier(len(notes))

    def go(note: str) -> None:
        barrier.wait()
        answers.append(post(w.url, request_body(0, [], note)).status_code)

    threads = [threading.Thread(target=go, args=(n,)) for n in notes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] + [409] * (len(notes) - 1)


def test_verify_export_applies_the_witness_policy(app: App, pair, tmp_path: Path) -> None:
    grow(app, 9)
    out = tmp_path / "export"
    service.export(app, out, "os:test")
    keys = [CosignerKey.parse(s.vkey) for s in pair]
    report = verify_export(out, None, keys, 2)
    assert report.cosigned_by == 2
    # the export's checkpoint without its cosignature lines fails the same policy
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("entries.jsonl", "key.vkey"):
        (bare / f).write_bytes((out / f).read_bytes())
    note = (out / "checkpoint").read_text()
    body, sigs = split_note(note)
    log_line = next(
        ln for ln in note.splitlines() if ln.startswith("\u2014 " + app.settings.audit_origin)
    )
    (bare / "checkpoint").write_text(body + "\n" + log_line + "\n")
    verify_export(bare)  # still a valid log checkpoint
    with pytest.raises(ExportInvalid, match="cosigned by 0 of the 2"):
        verify_export(bare, None, keys, 1)
    # a cosignature moved onto another checkpoint does not count
    with pytest.raises(ExportInvalid):
        other_key = CosignerKey.parse(witness.init(tmp_path / "x", "x.example/w", []))
        verify_export(out, None, [other_key], 1)


WITNESS_CHILD = [sys.executable, "-m", "idrs", "witness", "serve"]


def test_a_restarted_witness_keeps_its_state(app: App, tmp_path: Path) -> None:
    prepare(app)
    log_vkey = load_signer(app.settings.home).vkey()
    d = tmp_path / "w"
    r = subprocess.run(
        [sys.executable, "-m", "idrs", "witness", "init", "--name", "ig.example/w",
         "--dir", str(d), "--log", log_vkey],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    vkey = json.loads(r.stdout)["vkey"]
    assert CosignerKey.parse(vkey).name == "ig.example/w"
    assert (d / "witness.key").stat().st_mode & 0o777 == 0o600

    def start() -> tuple[subprocess.Popen[bytes], str]:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [*WITNESS_CHILD, "--dir", str(d), "--port", str(port)],
            stderr=subprocess.PIPE,
            env={**os.environ},
        )
        serving(proc, port, "idrs witness serve")
        return proc, f"http://127.0.0.1:{port}"

    proc, url = start()
    try:
        service.add_witness(app, "ig.example/w", url, vkey, "os:test")
        grow(app, 6)
        note = service.checkpoint_now(app)
        assert [x["status"] for x in witnesses.submit(app.engine)] == [200]
        until(lambda: witnesses.idle(app.engine))
    finally:
        proc.terminate()
        proc.wait()
    proc, url = start()
    try:
        # a request from scratch learns the size the witness cosigned before its restart
        r = post(url, request_body(0, [], note))
        assert r.status_code == 409 and r.text == "7\n"  # 6 entries + the witness:add record
        assert post(url, request_body(7, [], note)).status_code == 200
    finally:
        proc.terminate()
        proc.wait()


def test_witness_add_refuses_bad_input_and_writes_nothing(app: App, tmp_path: Path) -> None:
    prepare(app)
    good = witness.init(tmp_path / "w", "w.example/a", [])
    from idrs.errors import IdrsError

    bad = [
        ("w.example/a", "ftp://w", good),
        ("w.example/a", "http://w.example", load_signer(app.settings.home).vkey()),  # a log key
        ("w.example/b", "http://w.example", good),  # the key names another witness
        ("bad name", "http://w.example", good),
        ("w.example/a", "http://w.example", good[:-4] + "AAA="),
    ]
    for name, url, vkey in bad:
        with pytest.raises(IdrsError):
            service.add_witness(app, name, url, vkey, "os:test")
    assert witnesses.configured(app.engine) == []
    service.add_witness(app, "w.example/a", "http://w.example/", good, "os:test")
    with pytest.raises(IdrsError, match="already"):
        service.add_witness(app, "w.example/a", "http://w.example/", good, "os:test")


def test_the_journal_survives_a_torn_last_line_and_is_folded_in(tmp_path: Path) -> None:
    """A crash while appending: the torn record was never answered, the ones before stand."""
    signer = Signer("log.example/l", Ed25519PrivateKey.generate())
    d = tmp_path / "w"
    witness.init(d, "w.example/w", [signer.vkey()])
    w = witness.Witness(d)
    note = signer.sign(Checkpoint("log.example/l", 0, merkle.EMPTY_ROOT).text())
    assert w.add_checkpoint(request_body(0, [], note).encode()).status == 200
    leaf = merkle.leaf_hash(b"x")
    note1 = signer.sign(Checkpoint("log.example/l", 1, leaf).text())
    assert w.add_checkpoint(request_body(0, [], note1).encode()).status == 200
    w.close()
    with open(d / witness.JOURNAL_FILE, "a") as f:
        f.write('{"origin": "log.example/l", "size": 9')  # torn
    assert witness.current_state(d)["logs"]["log.example/l"]["size"] == 1
    w = witness.Witness(d)  # replays, folds into state.json, starts a new journal
    assert (d / witness.JOURNAL_FILE).read_text() == ""
    assert w.add_checkpoint(request_body(0, [], note1).encode()).status == 409
    w.close()


def test_the_cli_adds_a_witness_and_applies_the_policy(
    app: App, pair, lone, tmp_path: Path, capsys, monkeypatch
) -> None:
    from idrs.config import get_settings

    from .cli_helpers import run_cli

    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    get_settings.cache_clear()
    code, out, err = run_cli(
        capsys, "witness", "add", "--name", "lone.example/w", "--url", lone.url,
        "--vkey", lone.vkey, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["audit_index"] is not None
    code, out, _ = run_cli(capsys, "witness", "list", "--json")
    assert {w["name"] for w in json.loads(out)} == {
        "oig.example/w1", "court.example/w2", "lone.example/w"
    }  # fmt: skip
    grow(app, 4)
    code, out, err = run_cli(capsys, "audit", "checkpoint")
    assert code == 0, err
    assert len(split_note(out)[1]) == 4  # the log's signature and three cosignatures
    keys = [a for w in (*pair, lone) for a in ("--witness", w.vkey)]
    code, out, err = run_cli(capsys, "audit", "verify", *keys, "--witness-min", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["ok"]
    code, _, err = run_cli(capsys, "audit", "verify", *keys[:2], "--witness-min", "2")
    assert code == 1 and "--witness-min" in err
    stranger = witness.init(tmp_path / "s", "stranger.example/w", [])
    code, _, err = run_cli(capsys, "audit", "verify", "--witness", stranger)
    assert code == 1 and "witnesses" in err
    code, _, err = run_cli(capsys, "audit", "verify", "--witness", "not-a-key")
    assert code == 1 and "--witness" in err
    out_dir = tmp_path / "export"
    code, _, err = run_cli(capsys, "audit", "export", "--out", str(out_dir))
    assert code == 0, err
    code, out, err = run_cli(capsys, "audit", "verify-export", str(out_dir), *keys)
    assert code == 0, err
    assert "cosigned by 3 of 3 witnesses" in out
    code, _, err = run_cli(capsys, "audit", "verify-export", str(out_dir), "--witness", stranger)
    assert code == 1 and "cosigned by 0 of the 1" in err
    get_settings.cache_clear()


def test_a_silent_witness_never_holds_up_an_append(app: App, monkeypatch) -> None:
    """The witness accepts the connection and never answers; appends and signing go on."""
    import socket

    prepare(app)
    monkeypatch.setattr(witnesses, "TIMEOUT", 600.0)  # were it on the commit path: a hang
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    asked = threading.Event()

    def hold() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            conn.recv(65536)
            asked.set()

    threading.Thread(target=hold, daemon=True).start()
    key = witness.init(app.settings.home.parent / "silent", "silent.example/w", [])
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    service.add_witness(app, "silent.example/w", url, key, "os:test")
    app.settings.checkpoint_every_entries = 3
    log.configure(app.engine, app.settings)
    grow(app, 10)  # signs checkpoints at 3, 6, 9 on the way
    until(asked.is_set)
    assert not witnesses.idle(app.engine)  # the submission is still waiting on the witness
    grow(app, 4)  # and the log keeps committing and signing meanwhile
    with app.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM audit_checkpoint")).scalar_one() >= 4
    listener.close()
    for c in held:
        c.close()
    until(lambda: witnesses.idle(app.engine))


def test_witness_init_and_trust_refuse_bad_input_and_replace_nothing(tmp_path: Path) -> None:
    from idrs.errors import ConfigurationError

    signer = Signer("log.example/l", Ed25519PrivateKey.generate())
    with pytest.raises(ConfigurationError, match="log key"):
        witness.init(tmp_path / "a", "w.example/a", ["not+a+key"])
    assert not (tmp_path / "a").exists()  # nothing written
    with pytest.raises(ConfigurationError, match="witness name"):
        witness.init(tmp_path / "b", "bad name", [])
    assert not (tmp_path / "b").exists()
    vkey = witness.init(tmp_path / "c", "w.example/c", [])
    key_before = (tmp_path / "c" / witness.KEY_FILE).read_bytes()
    with pytest.raises(ConfigurationError, match="never replaced"):
        witness.init(tmp_path / "c", "w.example/c", [])
    assert (tmp_path / "c" / witness.KEY_FILE).read_bytes() == key_before
    assert witness.vkey_of(tmp_path / "c") == vkey
    # a log trusted later is witnessed from size 0; one never trusted is 404
    w = witness.Witness(tmp_path / "c")
    note = signer.sign(Checkpoint("log.example/l", 0, merkle.EMPTY_ROOT).text())
    assert w.add_checkpoint(request_body(0, [], note).encode()).status == 404
    w.close()
    assert witness.trust(tmp_path / "c", signer.vkey())["origin"] == "log.example/l"
    w = witness.Witness(tmp_path / "c")
    assert w.add_checkpoint(request_body(0, [], note).encode()).status == 200
    w.close()
