"""Recipe files: parsing and validation with one-line messages a person can act on."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from registry.errors import InvalidName, InvalidRecipe
from registry.refs import Ref, check_name

DTYPES = ("bfloat16", "float16", "float32")


class Term(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vector: str
    weight: float

    @field_validator("vector")
    @classmethod
    def _ref(cls, v: str) -> str:
        try:
            Ref.parse(v, "vector reference")
        except InvalidName as e:
            raise ValueError(str(e)) from e
        return v

    @field_validator("weight", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"weight must be a finite number, not {v!r}")
        return float(v)


class RecipeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    base: str
    method: str = "linear"
    terms: list[Term] = Field(min_length=1)
    dtype: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name", "base")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return check_name(v)
        except InvalidName as e:
            raise ValueError(str(e)) from e

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str | None) -> str | None:
        if v is not None and v not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {v!r}")
        return v


def _one_line(source: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "recipe"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    return f"{source}: " + "; ".join(parts)


def parse_recipe(data: Any, source: str = "recipe") -> RecipeSpec:
    if not isinstance(data, dict):
        raise InvalidRecipe(f"{source}: a recipe must be a YAML mapping with name, base, method, terms")
    try:
        spec = RecipeSpec.model_validate(data)
    except ValidationError as e:
        raise InvalidRecipe(_one_line(source, e)) from None
    from registry.methods import get_method

    try:
        get_method(spec.method).validate_parameters(spec.parameters)
    except ValueError as e:
        raise InvalidRecipe(f"{source}: {e}") from None
    return spec


def load_recipe_file(path: str | Path) -> RecipeSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidRecipe(f"cannot read recipe {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "malformed YAML"
        raise InvalidRecipe(f"{path.name}: malformed YAML{where}: {problem}") from None
    return parse_recipe(data, path.name)


def content_digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
