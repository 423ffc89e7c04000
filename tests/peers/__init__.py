"""Loopback peers (PBX, SMSC …) that tests and the demo talk to over real sockets."""
