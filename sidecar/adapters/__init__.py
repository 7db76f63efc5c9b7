"""Adapters: each owns one kind of I/O (Docker/compose, Redis, inotify, HTTP probes, disk)."""
