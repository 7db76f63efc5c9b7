"""Logging: loguru for everything, stdlib records (python-on-whales, watchdog) routed into it."""

from __future__ import annotations

import logging
import sys

from loguru import logger

_TEXT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[project]}</cyan> {message}"
)


class _Intercept(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure(level: str = "INFO", json: bool = False, project: str = "-") -> None:
    logger.remove()
    logger.configure(extra={"project": project})
    if json:
        logger.add(sys.stderr, level=level, serialize=True)
    else:
        logger.add(sys.stderr, level=level, format=_TEXT, colorize=None)
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)


def set_project(project: str) -> None:
    logger.configure(extra={"project": project})
