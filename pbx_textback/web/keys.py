"""What the sign-in check leaves on each request for the handlers: typed keys (aiohttp warns
on plain strings, NotAppKeyWarning). Every web module reads the user as request[USER]."""
from aiohttp import web

USER = web.RequestKey("user", object)       # the signed-in store.web.WebUser
CSRF = web.RequestKey("csrf", str)          # its session's CSRF token
API_TOKEN = web.RequestKey("api_token", object)   # the REST API's bearer token row (web/api.py)
