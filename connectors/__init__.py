"""Connectors: the product's reach into other systems (SMS centre, PBX, billing, FTP).

Each connector is a plain Python object that knows its protocol and nothing of Flask or of the
workflow engine; it offers named operations (``sms.send``, ``billing.submit_order`` …) that BPMN
service tasks name, and the engine runs them through its durable outbox (``engine.outbox``).
"""
