"""Audit event types of the detection package (``scope:resource:action``, alphabetized).

A family of :class:`idrs.audit.events.AuditEvent`, the one base of every event type.
"""

from __future__ import annotations

from idrs.audit.events import AuditEvent


class DetectionEvent(AuditEvent):
    DETECT_ALERT_ASSIGN = "detect:alert:assign"
    DETECT_ALERT_DISMISS = "detect:alert:dismiss"
    DETECT_ALERT_REFER = "detect:alert:refer"
    DETECT_ALERT_REVIEW = "detect:alert:review"
    DETECT_ALERT_SHOW = "detect:alert:show"
    DETECT_INVESTIGATION_CLOSE = "detect:investigation:close"
    DETECT_INVESTIGATION_OPEN = "detect:investigation:open"
    DETECT_INVESTIGATION_OUTCOME = "detect:investigation:outcome"
    DETECT_INVESTIGATION_SHOW = "detect:investigation:show"
    DETECT_REPORT_CERTIFY = "detect:report:certify"
    DETECT_REPORT_WEEKLY = "detect:report:weekly"
    DETECT_RUN_COMPLETE = "detect:run:complete"
    DETECT_SIMULATION_RUN = "detect:simulation:run"
    TAXPAYER_ACCESSES_READ = "taxpayer:accesses:read"
    TAXPAYER_NOTICE_SEND = "taxpayer:notice:send"
