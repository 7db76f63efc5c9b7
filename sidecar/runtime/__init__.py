"""The runtime: the reactor, its jobs and executors, wired from settings over the ports."""
