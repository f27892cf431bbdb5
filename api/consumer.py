"""Consumer routes (placeholder until the consumer lands)."""

from fastapi import APIRouter

router = APIRouter(prefix="/consumer", tags=["consumer"])
