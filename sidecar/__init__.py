"""compose-sidecar: keep a Docker Compose project live while people work on it."""

__version__ = "0.1.0"
