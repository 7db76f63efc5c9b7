"""The daemon's HTTP face: the API (`/v1/...`), `/metrics`, `/healthz` and the dashboard
(`/`, `/static/...`), served by `server.WebServer` on a supervised thread of its own."""
