"""``idrs detect run``: explain every access, score what is left, raise and keep alerts.

Callers: the CLI (``idrs detect run``), the API, the benchmarks. Steps:

1. read the audit entries from the cursor (:mod:`idrs.detection.cursor`; or from ``since``)
   to the end into DuckDB (:mod:`idrs.detection.logscan`), together with the *context* the
   last days need (see "Incremental runs" below; :mod:`idrs.detection.runner`); remember
   every case and contact opened (who opened it, for whom, on which taxpayer) in
   ``detection_basis`` (:mod:`idrs.detection.bases`);
2. **explain** (:mod:`idrs.detection.explained`) each allowed research access: its basis
   was assigned or routed by someone else (case by a manager, contact by the intake
   systems), or it is the unit's review workflow (a manager's review case on a taxpayer a
   member of the unit already has a case on), or collaboration (several employees assigned
   to one taxpayer's cases);
3. **score** (:mod:`idrs.detection.score`) the rest and every refused attempt with the
   signals of :mod:`idrs.detection.signals` and :mod:`idrs.detection.day_signals` joined
   with master-file facts (:mod:`idrs.detection.facts`: the employee's own surname, street,
   ZIP, unit; the target's surname, street, markers, whether an employee);
   3a. on every access, explained or not, the ties and the shape of the work of
   :mod:`idrs.detection.relations` (issue 17: an explained access is not a cleared one);
4. one alert per employee-day at or above :data:`scoring.THRESHOLD`
   (:mod:`idrs.detection.alerts`);
5. move the cursor past the last entry read; record ``detect:run:complete``.

Incremental runs give the alerts a full run over the same entries gives. A day's signals
look at most :data:`HORIZON` (six hours: many employees on one account) past the day's end,
at the whole day (volume, repeated refusals), at every use of a self-opened contact (quick
look without follow-up) and at self-reports made up to a day later. So a run *recomputes*
every employee-day from ``R``: the day of (first new entry - HORIZON), moved earlier to the
day a self-opened contact used since then was opened and to the day of an access
self-reported since (at most :data:`CONTEXT_MAX_DAYS` earlier: a contact used again after
longer is judged on its uses in those days, and the summary says ``context_capped``). It
re-reads the entries from ``R - HORIZON`` (context for the six-hour window and the
sequences) and replaces what it knew of those days: the employee-day volumes, and the
*open* alerts. An open alert the complete days no longer support is withdrawn (dismissed,
with :data:`WITHDRAWN` as the reason) and reopened if its day scores again; an assigned
alert only gains evidence; a dismissed or referred one stays closed, and a new alert is
raised only for signals it did not hold. The volume baseline is causal: the employee's own
days in the ``HISTORY_DAYS`` before the day, and the other employees of the role in those
days and that day. Days before ``R`` are final.

This module is the public entry point (the CLI, the API, the benchmarks and the tests call
it); the steps live in the modules named above, :func:`run` in :mod:`idrs.detection.runner`.

Nothing here reads return data: only names, addresses and markers, to compare with the
employee's own.
"""

from __future__ import annotations

from idrs.detection.alerts import WITHDRAWN
from idrs.detection.results import DetectionRun, RaisedAlert, RunSummary
from idrs.detection.runner import CONTEXT_MAX_DAYS, HORIZON, run

__all__ = ["CONTEXT_MAX_DAYS", "HORIZON", "WITHDRAWN", "DetectionRun", "RaisedAlert", "RunSummary",
           "run"]
