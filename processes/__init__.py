"""The business processes' own Python: what the diagrams call and what feeds them.

Outbound calls and return visits, telephony (calls, screen pops), routing what peers sent into the
cases that wait for it, and the tick that runs everything due. Functions take a ``Session`` (or a
``Sessions`` factory for work on their own thread), never a Flask app: ``web`` wires them in.
Depends on engine, slas and the connectors' interfaces; never on web.
"""
