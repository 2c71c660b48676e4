"""Server: runs the app under uvicorn with the engine's Config (uvicorn's own layering)."""

from __future__ import annotations

import logging

import uvicorn

from cart_pipeline.engine.config import Config
from cart_pipeline.engine.server.app import build_app


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config

    def uvicorn_config(self) -> uvicorn.Config:
        return uvicorn.Config(
            build_app(self.config),
            host=self.config.host,
            port=self.config.port,
            log_level=self.config.log_level,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )

    def run(self) -> None:
        logging.basicConfig(
            level=self.config.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        uvicorn.Server(self.uvicorn_config()).run()
