"""The JSON API a ServiceScheduler serves, as one list of the route modules' routers."""

from __future__ import annotations

from fastapi import APIRouter

from servicescheduler.api import cluster, consumer, system, tasks

ROUTERS: tuple[APIRouter, ...] = (system.router, tasks.router, consumer.router, cluster.router)
