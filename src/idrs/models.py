"""Import every package's models so that ``Base.metadata`` is complete (Alembic, tests)."""

from idrs.access import models as access_models
from idrs.adjustments import models as adjustments_models
from idrs.audit import models as audit_models
from idrs.db import Base
from idrs.detection import models as detection_models
from idrs.disclosure import models as disclosure_models
from idrs.grants import models as grants_models  # noqa: F401
from idrs.masterfile import models as masterfile_models
from idrs.people import models as people_models

__all__ = ["Base", "access_models", "adjustments_models", "audit_models", "detection_models", "disclosure_models", "masterfile_models", "people_models"]
