"""The web console: static files served by Keel itself (no Node at run time, no CDN)."""
