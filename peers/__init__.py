"""Loopback protocol peers: a real SMPP server (node-smpp) and an AMI server, on 127.0.0.1.

The demo (``serve --demo``) starts them when no real peer is configured, and the tests drive them
(fixtures in ``tests/peers``). The product talks to them exactly as to real ones. Nothing here
imports the product.
"""
