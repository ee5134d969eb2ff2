"""The /cases page's data: the signed-in employee's own open cases and taxpayer contacts.

The HTTP layer calls services only: the query lives in ``idrs.access.inventory`` (read-only,
session-free, TINs masked, nothing recorded); this module names it for ``web.routes``.
"""

from __future__ import annotations

from idrs.access.inventory import Inventory, Item, open_work

__all__ = ["Inventory", "Item", "open_work"]
