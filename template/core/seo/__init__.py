"""The SEO workbench: the crawl (frontier, fetching, robots and sitemaps, on-page checks, findings), the crawl
comparison, the external link checks, the URL checker and `./run crawl`. Template-owned."""
