"""Runtime functions: what `POST /tasks` can make a task of (`@scheduler.function(...)`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from servicescheduler.api.deps import AppDep
from servicescheduler.api.responses import error_responses

router = APIRouter(prefix="/functions", tags=["tasks"], responses=error_responses(500, 503))


class FunctionView(BaseModel):
    """A declared runtime function."""

    name: str
    parameters: str = Field(description="its keyword arguments besides ctx, e.g. '*, region: str, copies: int = 1'")
    description: str = Field(description="the first line of its docstring")


@router.get("", response_model=list[FunctionView])
def list_functions(application: AppDep) -> list[FunctionView]:
    """Every function a runtime task can be created from, by name."""
    found = []
    for name, func in sorted(application.registry.functions.items()):
        signature = _signature(func)
        parameters = list(signature.parameters.values())[1:]  # the first is ctx
        shown = str(signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty))[1:-1]
        doc = (inspect.getdoc(func) or "").strip().splitlines()
        found.append(FunctionView(name=name, parameters=shown, description=doc[0] if doc else ""))
    return found


def _signature(func: Callable[..., Any]) -> inspect.Signature:
    """The signature with string annotations (`from __future__ import annotations`) resolved
    where they can be, so that `region: str` reads as written."""
    try:
        return inspect.signature(func, eval_str=True)
    except Exception:  # a name only importable under TYPE_CHECKING: shown as the string
        return inspect.signature(func)
