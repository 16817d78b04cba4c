"""The LAN chat: peer to peer over UDP, every message acknowledged, a history kept.

:mod:`~netassist.chat.protocol` is the sans-IO protocol, :mod:`~netassist.chat.peer` owns the
socket and its threads, :mod:`~netassist.chat.history` the log, :mod:`~netassist.chat.ui` the
terminal.
"""
