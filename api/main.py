"""`uvicorn --factory api.main:app_from_env`: the API configured from the environment."""

from fastapi import FastAPI

from api.app import create_app
from yueke.settings import Settings


def app_from_env() -> FastAPI:
    return create_app(Settings(), settle_heap=True)
