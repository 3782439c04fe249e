"""The web pages staff work in: server-rendered HTML forms over the same actions as the JSON API."""
