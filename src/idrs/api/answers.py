"""The base of the API's response models (issue 12, point 5).

A route answers what its service returns, through a model that names every key the answer
has. Routes declare ``response_model_exclude_unset=True`` where a key is present only
sometimes (a field with a default that the service did not set is left out, as before), and
the models allow extra keys (``extra="allow"``): a key a service adds later is passed on
after the named ones, never dropped silently — the OpenAPI document still names the keys
that are always there.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    """A JSON answer of the API (keys in the order the answer gives them)."""

    model_config = ConfigDict(extra="allow")

