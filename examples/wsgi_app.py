"""
A WSGI application, served by `twist resumetls --wsgi`:

    twist resumetls --port 8443 --wsgi examples.wsgi_app.application

A WSGI app cannot see the TLS connection; resumption happens underneath it.
"""


def application(environ, start_response):
    body = b"hello from WSGI over TLS with resumption\n"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
