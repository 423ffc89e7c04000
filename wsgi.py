"""WSGI entry point: ``app = create_app()`` for waitress, gunicorn or ``flask --app wsgi``."""

from web import create_app

app = create_app()
