"""probed: synthetic probing and SLO monitoring for services on AWS, as one asyncio daemon."""

__version__ = "0.1.0"
