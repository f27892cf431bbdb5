"""The JSON API a ServiceScheduler serves, as one list of the route modules' routers."""

from __future__ import annotations

from fastapi import APIRouter

from servicescheduler.api import cluster, consumer, functions, system, tasks

ROUTERS: tuple[APIRouter, ...] = (system.router, tasks.router, functions.router, consumer.router, cluster.router)
