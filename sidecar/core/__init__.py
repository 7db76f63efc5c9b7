"""The pure core: plain data and decisions. Imports no adapter, no runtime module, no I/O."""
