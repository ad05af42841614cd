"""The web desk (issue 11): HTTP in the PBX's event loop — pages (jinja2) and a versioned
JSON API with the live event stream as Server-Sent Events.

* :mod:`pypbx.web.accounts` — users, roles, API tokens, audit log (also the CLI's library);
* :mod:`pypbx.web.security` — the cookie secret, signed session cookies, CSRF tokens, login rate limit;
* :mod:`pypbx.web.routes` — THE table of routes and the roles that reach them, and the middleware
  that enforces it (no route answers without a session or token unless it is marked public);
* :mod:`pypbx.web.api` — the ``/api/v1/`` handlers (thin: the CLI's library functions);
* :mod:`pypbx.web.pages` — the HTML pages (login, layout, wallboard);
* :mod:`pypbx.web.board` — the wallboard's snapshot (from the ACD's live state, the database and the report);
* :mod:`pypbx.web.desk` — the agent desk's view (state, current call, the caller's last calls) and call notes;
* :mod:`pypbx.web.openapi` — the OpenAPI 3 description, checked against the router by a test;
* :mod:`pypbx.web.server` — the aiohttp application and its start/stop in ``pypbx run``.

Only :mod:`accounts` may be imported by the CLI without aiohttp's weight; nothing here runs in
a call's path: the pages read the database, the ACD's snapshot and the event stream.
"""
