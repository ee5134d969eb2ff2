"""idrs: confidential taxpayer accounts behind need-to-know access and a verifiable audit log."""

__version__ = "0.1.0"
