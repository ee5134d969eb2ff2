"""THE adjustment service: request, approve, reject, list pending, reverse (ENREQ/ADJ54/REQ77).

Every change to an account from every interface goes through these functions:

1. the input is validated (``rules.validate``): bad input is refused before anything is
   stored or recorded (ValidationFailed, 422);
2. the employee behind the token is authenticated (an unauthenticated call is recorded);
3. facts = ``access.facts.gather`` and verdict = ``access.policy.decide`` with the
   adjustment's command code: profile, need to know and every conflict apply exactly as
   for research; in addition the same employee must have run the prerequisite research in
   the same sign-in session (``ENMOD`` before ``ENREQ``; ``TXMOD`` of the year before
   ``ADJ54``/``REQ77``), else ``PREREQUISITE_RESEARCH``. Every applicable reason is given;
   a denial is recorded in its own short transaction (it survives) and raised;
4. the two-person triggers (``rules.two_person_triggers``) decide between applying at once
   and leaving the request ``pending_approval``. ``TWO_PERSON_REQUIRED`` is NOT a denial:
   the answer is 201 with status ``pending_approval`` and ``requires`` =
   ``["TWO_PERSON_REQUIRED", <triggers>]``. The amount thresholds apply to the sum of the
   changes of the same kind on the module and on the taxpayer within ``window_days``
   (``rules.threshold_reasons``; pending ones and every employee's count): the answer's
   ``reasons`` then name the earlier adjustments. The sum is read again inside the write
   transaction, under a per-taxpayer lock (PostgreSQL: the transaction-scoped advisory lock
   (:data:`~idrs.adjustments.lookups.ADJ_LOCK_CLASS`, taxpayer id); SQLite: the write lock held since BEGIN
   IMMEDIATE), so two changes racing on one taxpayer cannot both apply below the threshold:
   the second sees the first and waits;
5. the change (version check, postings, request row) and its audit entry commit in ONE
   transaction (the audit package's unit of work, ``log.unit_of_work``): both or neither. A stale version is a
   :class:`~idrs.adjustments.apply.VersionConflict` (409), recorded in its own entry.

Optimistic concurrency: a request states ``base_version`` (the module version for ADJ54 and
REQ77, the entity version for ENREQ). When it states none, the base is the version the
employee saw at the prerequisite research (kept in the research trail; after the employee's
own applied change, the trail follows the new version). Applying runs
``UPDATE … SET version=version+1 WHERE id=? AND version=?``; zero rows is a conflict.

Approval: the approver must hold the approval authority (role ``manager``; else
``APPROVAL_AUTHORITY_REQUIRED``), must not be the requester (``SELF_APPROVAL``), must pass the
access decision on the taxpayer with the request's command treated as in their profile and
the request's case as their basis — so every conflict, protected-account and sensitive-account
rule applies to them exactly as to a researcher — and must not be conflicted with the
requester (the requester's own TIN in the approver's conflict set: ``CONFLICT_*`` with a
message naming the requester). Pending requests expire after ``pending_hours``.

Every call past input validation appends exactly one ``access:adjustment:decide`` entry
(``object.action`` = request | approve | reject | reverse | list | expire) naming the
taxpayer only by pseudonym; its index is the ``audit_index`` of the answer or the denial.

This module is the public entry point (the CLI, the API, the pages and other packages call
it). The work is in :mod:`~idrs.adjustments.request`, :mod:`~idrs.adjustments.approval`
(approve, reject, expire, the approvers' list) and :mod:`~idrs.adjustments.reversal`, over
:mod:`~idrs.adjustments.lookups` (what a call reads), :mod:`~idrs.adjustments.calls` (a
call's entry, sign-in, settings, the commit with its entry),
:mod:`~idrs.adjustments.apply` (the postings) and :mod:`~idrs.adjustments.results` (the
answers).
"""

from __future__ import annotations

from idrs.adjustments.approval import approve, expire_due, listing, pending, reject
from idrs.adjustments.calls import configure, thresholds_for
from idrs.adjustments.request import request
from idrs.adjustments.results import AdjustmentListing, AdjustmentResult, ListedAdjustment
from idrs.adjustments.reversal import reverse

__all__ = ["AdjustmentListing", "AdjustmentResult", "ListedAdjustment", "approve", "configure",
           "expire_due", "listing", "pending", "reject", "request", "reverse", "thresholds_for"]
