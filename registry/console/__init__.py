"""The review console: accounts, browser sessions, pages and the REST API behind `registry serve`.

`accounts` and `sessions` need only the database; `app` (FastAPI, Jinja2) is imported by
`registry serve` alone, so the rest of the CLI does not pay for it.
"""
