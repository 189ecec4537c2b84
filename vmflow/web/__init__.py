"""The read-only web view of jobs and their flow graphs (``vmflow web``).

:mod:`.jobs` reads what the pages show (no Flask in it), :mod:`.redact`
masks credentials, :mod:`.app` is the Flask app; Flask is imported only
by :mod:`.app`, which only ``vmflow web`` imports.
"""
