"""The TCP/UDP debugging assistant: what ``netassist udp``, ``tcp`` and ``replay`` run.

``udp.send`` / :class:`~netassist.wire.udp.UdpListener`, ``tcp.connect`` /
:class:`~netassist.wire.tcp.TcpListener`, and ``replay.replay`` are the library API; the
command line only parses arguments and calls them.
"""
