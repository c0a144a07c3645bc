"""Errors that carry their HTTP status; app.py renders them all as {"error": ...}."""

from __future__ import annotations


class AppError(Exception):
    """An error a person can act on, with the HTTP status it answers with."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AppError):
    status = 400


class Unauthorized(AppError):
    status = 401


class NotFound(AppError):
    status = 404


class Conflict(AppError):
    status = 409


class PayloadTooLarge(AppError):
    status = 413


class TooManyJobs(AppError):
    status = 429


class ProviderError(AppError):
    """The model provider failed; the message says what to do about it."""

    status = 502


class ShuttingDown(AppError):
    status = 503
