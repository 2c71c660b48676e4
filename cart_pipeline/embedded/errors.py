"""Errors of the local stack.

::

    StackError                 anything that stops the local stack from doing what was asked
     ├── PrerequisiteMissing   Java 17+ or Maven is not installed (says what to install)
     ├── RuntimeResolveError   Maven could not fetch the Kafka runtime
     ├── PortInUse             a port the stack needs is taken by another process
     └── ServiceStartError     a service exited or did not become ready in time
                               (carries the last lines of its log)

Every message is one actionable paragraph: what failed, and what to do about it.
"""

from __future__ import annotations


class StackError(Exception):
    """Base class: the local stack could not do what was asked."""


class PrerequisiteMissing(StackError):
    """A tool the embedded stack needs (Java, Maven) is missing or too old."""


class RuntimeResolveError(StackError):
    """Maven could not resolve the Kafka runtime from Maven Central."""


class PortInUse(StackError):
    """A port the stack wants to bind on 127.0.0.1 is already taken."""

    def __init__(self, service: str, host: str, port: int, env_var: str) -> None:
        self.service, self.host, self.port, self.env_var = service, host, port, env_var
        super().__init__(
            f"{service} cannot start: {host}:{port} is already in use by another process. "
            f"Stop that process, or choose another port with {env_var}=<port>."
        )


class ServiceStartError(StackError):
    """A service's process exited during start-up or did not become ready in time."""

    def __init__(self, service: str, reason: str, log_tail: str = "", log_path: str = "") -> None:
        self.service, self.reason, self.log_tail, self.log_path = (
            service,
            reason,
            log_tail,
            log_path,
        )
        message = f"{service} failed to start: {reason}"
        if log_path:
            message += f" (full log: {log_path})"
        if log_tail:
            message += f"\n--- last lines of its log ---\n{log_tail}"
        super().__init__(message)
