"""Service-level agreements: deadlines counted on a business calendar.

Pure domain code; nothing in this package may import Flask or web code.
"""
