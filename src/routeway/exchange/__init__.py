"""The API-neutral core of a request: reserve → attempts → settle (core.py), the streaming and whole
halves that turn upstream answers into normalized events (stream.py, whole.py, events.py), and the
client side each inbound API's renderer implements (client.py)."""
