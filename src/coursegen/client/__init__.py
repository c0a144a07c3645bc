"""The terminal client: `coursegen generate`, `list` and `export` over the HTTP API.

`remote` talks HTTP and SSE to a service, `local` serves one in this process for it,
`view` keeps what the client knows of a course, `display` shows it and `commands`
puts them together for the command line.
"""
