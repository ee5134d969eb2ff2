"""idrs import: all or nothing, idempotent per taxpayer and year, nothing plaintext at rest."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from idrs.audit.models import AuditEntry
from idrs.errors import ValidationFailed
from idrs.masterfile import models as m
from idrs.masterfile.importer import import_file

ANN = {
    "tin": "900-12-3456",
    "name": {"first": "Ann", "middle": "B", "last": "Carter", "suffix": ""},
    "date_of_birth": "1980-02-01",
    "address": {"street": "12 Elm St", "city": "Dayton", "state": "OH", "zip": "45402"},
    "phone": "937-555-0100",
    "markers": ["high_profile"],
    "returns": [
        {
            "tax_year": 2023,
            "filing_status": "MFJ",
            "spouse_tin": "900-12-3457",
            "address": {"street": "12 Elm Street", "city": "Dayton", "state": "OH", "zip": "45402"},
            "dependents": [
                {
                    "tin": "900-12-3458",
                    "relationship": "son",
                    "name": {"first": "Cal", "last": "Carter"},
                    "adoption_pending": False,
                }
            ],
            "w2": [
                {
                    "employer_ein": "00-1234567",
                    "employer_name": "Acme Corp",
                    "wages": 61000.00,
                    "withholding": 7100.00,
                }
            ],
            "k1": [
                {"entity_ein": "00-7654321", "entity_name": "Carter & Diaz LLP", "share_pct": 50.0}
            ],
            "schedule_c": [{"business_name": "Ann Carter Design", "ein": "00-2222222"}],
            "agi": 58000.00,
            "total_tax": 4100.00,
            "preparer_ptin": "P00000001",
            "refund": {
                "amount": 3000.00,
                "direct_deposit": {"routing": "800000006", "account": "000123456789"},
            },
        }
    ],
    "transactions": [{"tax_year": 2023, "tc": "150", "date": "2024-04-15", "amount": 4100.00}],
}


def person(tin, first, **changes):
    rec = copy.deepcopy(ANN)
    rec["tin"] = tin
    rec["name"]["first"] = first
    rec.update(changes)
    return rec


def bob():
    rec = person("900-12-3457", "Bob", markers=[], phone="937-555-0101")
    rec["returns"] = [
        {
            "tax_year": 2022,
            "filing_status": "MFS",
            "spouse_tin": "900-12-3456",
            "agi": 30000,
            "total_tax": 2000.5,
            "refund": {
                "amount": 10,
                "direct_deposit": {"routing": "800000006", "account": "000123456789"},
            },
        }
    ]
    rec["transactions"] = [{"tax_year": 2022, "tc": "150", "date": "2023-04-01", "amount": 2000.5}]
    return rec


def write(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def count(app, model) -> int:
    with app.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def test_import_stores_every_part_and_links_both_ways(app, tmp_path):
    result = import_file(app, write(tmp_path / "a.jsonl", [ANN, bob()]), "os:tester")
    assert result.lines == 2
    assert result.stats.taxpayers_created == 2
    ring = app.keyring
    with app.engine.connect() as conn:
        tp = conn.execute(
            select(m.Taxpayer).where(m.Taxpayer.tin_index == ring.tin_index("900123456"))
        ).one()
        assert ring.decrypt(tp.tin_enc, "taxpayer.tin") == "900123456"
        assert ring.decrypt(tp.dob_enc, "taxpayer.dob") == "1980-02-01"
        assert ring.decrypt(tp.phone_enc, "taxpayer.phone") == "937-555-0100"
        assert (tp.first_name, tp.last_name, tp.name_control) == ("Ann", "Carter", "CART")
        ret = conn.execute(select(m.TaxReturn).where(m.TaxReturn.taxpayer_id == tp.id)).one()
        assert (ret.tax_year, ret.filing_status, ret.agi_cents, ret.refund_cents) == (
            2023,
            "MFJ",
            5_800_000,
            300_000,
        )
        assert ring.decrypt(ret.routing_enc, "tax_return.routing") == "800000006"
        assert ring.decrypt(ret.account_enc, "tax_return.account") == "000123456789"
        # spouse: Ann's return names Bob; Bob's names Ann (both directions by blind index)
        assert ret.spouse_tin_index == ring.tin_index("900123457")
        bob_row = conn.execute(
            select(m.Taxpayer.id).where(m.Taxpayer.tin_index == ring.tin_index("900123457"))
        ).scalar_one()
        back = (
            conn.execute(
                select(m.TaxReturn.taxpayer_id).where(
                    m.TaxReturn.spouse_tin_index == ring.tin_index("900123456")
                )
            )
            .scalars()
            .all()
        )
        assert back == [bob_row]
        # a shared bank account: two returns, one bank index
        banks = conn.execute(select(m.TaxReturn.bank_index)).scalars().all()
        assert len(banks) == 2 and banks[0] == banks[1] and banks[0] is not None
        dep = conn.execute(
            select(m.Dependent).where(m.Dependent.tin_index == ring.tin_index("900123458"))
        ).one()
        assert (dep.return_id, dep.relationship, dep.adoption_pending) == (ret.id, "son", False)
        assert ring.decrypt(dep.tin_enc, "dependent.tin") == "900123458"
        w2 = conn.execute(
            select(m.W2).where(m.W2.employer_ein_index == ring.blind_index("001234567", "ein"))
        ).one()
        assert (w2.wages_cents, w2.withholding_cents, w2.return_id) == (6_100_000, 710_000, ret.id)
        k1 = conn.execute(select(m.K1)).one()
        assert k1.entity_ein_index == ring.blind_index("007654321", "ein") and k1.share_pct == 50.0
        sc = conn.execute(select(m.ScheduleC)).one()
        assert ring.decrypt(sc.ein_enc, "schedule_c.ein") == "002222222"
        kinds = dict(conn.execute(select(m.Business.name, m.Business.kind)).all())
        assert kinds == {
            "Acme Corp": "employer",
            "Carter & Diaz LLP": "partnership",
            "Ann Carter Design": "sole_prop",
        }
        markers = conn.execute(
            select(m.Marker.marker).where(m.Marker.taxpayer_id == tp.id)
        ).scalars()
        assert list(markers) == ["high_profile"]
        addrs = conn.execute(
            select(m.AddressRecord)
            .where(m.AddressRecord.taxpayer_id == tp.id)
            .order_by(m.AddressRecord.source)
        ).all()
        assert [(a.source, a.tax_year) for a in addrs] == [("entity", None), ("return", 2023)]
        # "12 Elm St" and "12 Elm Street" are one dwelling
        assert addrs[0].norm_key == addrs[1].norm_key == "12 ELM ST|DAYTON|OH|45402"
        txn = conn.execute(
            select(
                m.Transaction.tc,
                m.Transaction.amount_cents,
                m.Transaction.source,
                m.TaxModule.tax_year,
                m.Transaction.txn_date,
            )
            .join(m.TaxModule, m.TaxModule.id == m.Transaction.module_id)
            .where(m.TaxModule.taxpayer_id == tp.id)
        ).one()
        assert tuple(txn[:4]) == ("150", 410_000, "import", 2023)
        assert str(txn[4]) == "2024-04-15"


def test_audit_entry_has_counts_and_no_identity(app, tmp_path):
    result = import_file(app, write(tmp_path / "a.jsonl", [ANN, bob()]), "os:tester")
    with app.engine.connect() as conn:
        leaf = conn.execute(
            select(AuditEntry.leaf_input).where(AuditEntry.idx == result.audit_index)
        ).scalar_one()
    entry = json.loads(leaf)
    assert entry["type"] == "data:import:run" and entry["actor"] == "os:tester"
    assert entry["outcome"] == "success"
    assert entry["detail"]["taxpayers_created"] == 2 and entry["detail"]["lines"] == 2
    for secret in (b"900123456", b"900-12-3456", b"Carter", b"000123456789", b"Elm"):
        assert secret not in leaf


def test_bad_lines_reported_with_numbers_and_nothing_stored(app, tmp_path):
    bad_tin = person("900-12-345", "Xavier")
    bad_money = person("900-12-4000", "Yara")
    bad_money["returns"][0]["agi"] = 10.001
    lines = [ANN, bad_tin, bob(), "{not json", bad_money]
    with pytest.raises(ValidationFailed) as info:
        import_file(app, write(tmp_path / "bad.jsonl", lines), "os:tester")
    found = info.value.problems
    assert "line 2: tin: not a TIN (9 digits, NNN-NN-NNNN)" in found
    assert "line 4: json: invalid JSON" in found
    assert "line 5: returns[0].agi: at most two decimals" in found
    assert not any(p.startswith(("line 1:", "line 3:")) for p in found)
    for model in (m.Taxpayer, m.TaxReturn, m.Transaction, m.AddressRecord, m.Business, m.TaxModule):
        assert count(app, model) == 0, model
    with app.engine.connect() as conn:
        leaf = conn.execute(select(AuditEntry.leaf_input).order_by(AuditEntry.idx.desc())).first()[
            0
        ]
    assert json.loads(leaf)["outcome"] == "failure"


def test_reimport_is_idempotent_and_replaces_only_the_years_given(app, tmp_path):
    ann_2022 = copy.deepcopy(ANN)
    ann_2022["returns"][0].update(tax_year=2022)
    ann_2022["transactions"] = [{"tax_year": 2022, "tc": "150", "date": "2023-04-15", "amount": 99}]
    import_file(app, write(tmp_path / "a.jsonl", [ANN, bob(), ann_2022]), "os:t")

    def snapshot():
        with app.engine.connect() as conn:
            return {
                t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
                for t in (
                    "taxpayer",
                    "tax_return",
                    "dependent",
                    "w2",
                    "k1",
                    "schedule_c",
                    "tax_module",
                    "txn",
                    "address_record",
                    "business",
                    "taxpayer_marker",
                )
            }

    first = snapshot()
    assert first["tax_return"] == 3 and first["taxpayer"] == 2
    again = import_file(app, write(tmp_path / "b.jsonl", [ANN, bob(), ann_2022]), "os:t")
    assert again.stats.taxpayers_created == 0 and again.stats.taxpayers_updated == 3
    assert snapshot() == first

    changed = copy.deepcopy(ANN)  # 2023 only: new AGI, no dependents, a new address
    changed["returns"][0]["agi"] = 1.5
    changed["returns"][0]["dependents"] = []
    changed["address"] = {"street": "3 Oak Ave", "city": "Dayton", "state": "OH", "zip": "45403"}
    import_file(app, write(tmp_path / "c.jsonl", [changed]), "os:t")
    ring = app.keyring
    with app.engine.connect() as conn:
        tid = conn.execute(
            select(m.Taxpayer.id).where(m.Taxpayer.tin_index == ring.tin_index("900123456"))
        ).scalar_one()
        rets = dict(
            conn.execute(
                select(m.TaxReturn.tax_year, m.TaxReturn.agi_cents).where(
                    m.TaxReturn.taxpayer_id == tid
                )
            ).all()
        )
        assert rets == {2022: 5_800_000, 2023: 150}
        assert conn.execute(select(func.count()).select_from(m.Dependent)).scalar_one() == 1
        history = (
            conn.execute(
                select(m.AddressRecord.street)
                .where(m.AddressRecord.taxpayer_id == tid, m.AddressRecord.source == "entity")
                .order_by(m.AddressRecord.id)
            )
            .scalars()
            .all()
        )
        assert history == ["12 Elm St", "3 Oak Ave"]
        amounts = conn.execute(
            select(m.TaxModule.tax_year, m.Transaction.amount_cents)
            .join(m.Transaction, m.Transaction.module_id == m.TaxModule.id)
            .where(m.TaxModule.taxpayer_id == tid)
            .order_by(m.TaxModule.tax_year)
        ).all()
        assert [tuple(a) for a in amounts] == [(2022, 9900), (2023, 410_000)]
        versions = dict(
            conn.execute(
                select(m.TaxModule.tax_year, m.TaxModule.version).where(
                    m.TaxModule.taxpayer_id == tid
                )
            ).all()
        )
        assert versions[2023] > versions[2022] >= 1


def test_same_tin_twice_in_one_file_last_wins(app, tmp_path):
    later = copy.deepcopy(ANN)
    later["name"]["first"] = "Anne"
    import_file(app, write(tmp_path / "a.jsonl", [ANN, later]), "os:t")
    with app.engine.connect() as conn:
        assert conn.execute(select(m.Taxpayer.first_name)).scalars().all() == ["Anne"]
        assert conn.execute(select(func.count()).select_from(m.TaxReturn)).scalar_one() == 1


def _stored_bytes(app, tmp_path) -> bytes:
    """Every byte at rest: the SQLite file and its WAL, or a PostgreSQL dump of every row."""
    if app.engine.dialect.name == "sqlite":
        db = Path(app.engine.url.database)
        return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    out = []
    with app.engine.connect() as conn:
        tables = (
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            .scalars()
            .all()
        )
        for t in tables:
            for (row,) in conn.execute(text(f'SELECT t::text FROM "{t}" t')):  # noqa: S608
                out.append(row.encode())
    blob = b"\n".join(out)
    return blob + blob.hex().encode()  # bytea renders as hex: look for hex-encoded plaintext too


def test_database_holds_no_plaintext_tin_or_bank_number(app, tmp_path):
    import_file(app, write(tmp_path / "a.jsonl", [ANN, bob()]), "os:t")
    raw = _stored_bytes(app, tmp_path)
    assert b"Carter" in raw  # the dump is real: names are stored in clear
    secrets = [
        "900123456",
        "900-12-3456",
        "900123457",
        "900123458",
        "001234567",
        "00-1234567",
        "007654321",
        "002222222",
        "800000006",
        "000123456789",
        "937-555-0100",
        "1980-02-01",
    ]
    for s in secrets:
        assert s.encode() not in raw, s
        if app.engine.dialect.name != "sqlite":
            assert s.encode().hex().encode() not in raw, s


def test_unreadable_file_is_a_one_line_error(app, tmp_path):
    from idrs.errors import IdrsError

    with pytest.raises(IdrsError, match="cannot read"):
        import_file(app, tmp_path / "missing.jsonl", "os:t")


def test_cli_import_json_and_bad_lines(app, tmp_path, monkeypatch, capsys):
    from idrs.cli import main

    monkeypatch.setenv("IDRS_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("IDRS_HOME", str(app.settings.home))
    main(["import", str(write(tmp_path / "a.jsonl", [ANN])), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["taxpayers_created"] == 1 and out["lines"] == 1
    with pytest.raises(SystemExit) as info:
        main(["import", str(write(tmp_path / "b.jsonl", [bob(), person("1", "Z")]))])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "line 2: tin: not a TIN" in err and "nothing was imported" in err
    assert "Traceback" not in err
    assert count(app, m.Taxpayer) == 1


def test_worker_processes_validate_and_the_outcome_is_the_serial_one(app, tmp_path, monkeypatch):
    """Issue 18.1: lines validated by worker processes, written in file order in one
    transaction: the same records, the same refusal with the same problems."""
    from idrs.masterfile import importer

    monkeypatch.setattr(importer, "BLOCK_LINES", 2)  # several blocks in flight at once
    bad_tin = person("900-12-345", "Xavier")
    lines = [ANN, bob(), bad_tin, "{not json", person("900-12-4001", "Zed")]
    with pytest.raises(ValidationFailed) as info:
        import_file(app, write(tmp_path / "bad.jsonl", lines), "os:tester", workers=2)
    assert info.value.problems == [
        "line 3: tin: not a TIN (9 digits, NNN-NN-NNNN)",
        "line 4: json: invalid JSON",
    ]
    assert count(app, m.Taxpayer) == 0
    # the same TIN twice across blocks: file order still decides (the last one wins)
    later = person("900-12-3456", "Annie")
    good = [ANN, bob(), person("900-12-4001", "Zed"), later]
    result = import_file(app, write(tmp_path / "good.jsonl", good), "os:tester", workers=2)
    assert result.lines == 4 and result.stats.taxpayers_created >= 3
    with app.engine.connect() as conn:
        names = {r[0] for r in conn.execute(text("SELECT first_name FROM taxpayer"))}
    assert "Annie" in names and "Ann" not in names
