"""What probed shows: the metric catalog, the exposition, the JSON API and the web routes."""
