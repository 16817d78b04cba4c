"""File transfer: ``netassist files`` (server and client over one small verified protocol)."""
