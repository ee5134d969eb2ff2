"""Disclosures to other agencies under a statute, in bulk, decided record by record (issue 16).

- ``bases``: each statutory basis as Cedar policies (``policies/*.cedar``), its answer scope
  and reason codes;
- ``addresses``: is the address given an address (placeholders refused as missing);
- ``matching``: exact on TIN, or the name-and-address rule; ambiguous matches refused;
- ``service``: agreements, submission, caps and the officer's approval, the per-record
  decisions and the one audit entry committing their Merkle root, proofs, the accounting
  of disclosures and the oversight section of an agency system;
- ``models``: the tables of migration 0009.
"""
