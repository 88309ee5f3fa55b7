"""Exceptions raised by the queue protocol."""

from __future__ import annotations


class QueueError(Exception):
    """Base class of every error raised by package ``jobqueue``."""


class ConfigError(QueueError):
    """A connection setting (URL, options) is invalid; the message never holds a password."""
