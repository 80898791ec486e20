"""The base of every gate.yml and policy model: frozen, unknown keys refused, no coercion
("300" is not a number)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
