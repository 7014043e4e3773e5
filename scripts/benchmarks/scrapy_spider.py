"""A minimal Scrapy spider, the crawl's peer in the bench: `scrapy runspider scrapy_spider.py -a start=URL -o FILE.jsonl`
follows every link within the start URL's host and port and writes each page's URL, status and title, 8 requests at
once, no delay, robots.txt not read, no AutoThrottle: Scrapy's defaults otherwise."""

from urllib.parse import urlsplit

import scrapy


class SiteSpider(scrapy.Spider):
    name = "site"
    custom_settings = {"CONCURRENT_REQUESTS": 8, "CONCURRENT_REQUESTS_PER_DOMAIN": 8, "DOWNLOAD_DELAY": 0,
                       "ROBOTSTXT_OBEY": False, "AUTOTHROTTLE_ENABLED": False, "TELNETCONSOLE_ENABLED": False,
                       "LOG_LEVEL": "WARNING"}

    def __init__(self, start: str, **kwargs):
        super().__init__(**kwargs)
        self.start_urls, self.site = [start], urlsplit(start).netloc

    def parse(self, response):
        yield {"url": response.url, "status": response.status, "title": response.css("title::text").get()}
        for href in response.css("a::attr(href)").getall():
            url = response.urljoin(href)
            if urlsplit(url).netloc == self.site: yield scrapy.Request(url, self.parse)
