"""One router per resource; each route names one action of identity.policy.

Every module here that defines `router` is mounted under /api/v1 by `create_app`, in the
order of the module names (so the OpenAPI document's order is stable and adding a resource
is adding a module)."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    """The `router` of each module of this package, by module name."""
    found = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        router = getattr(loaded, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found
