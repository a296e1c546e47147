"""Staff dashboards: the loop's health on server-rendered pages with inline SVG charts."""
