"""
twistd plugins: ``twistd multistore`` (the daemon itself is in
L{multistore.tap}), and the ``reuseport:`` listening endpoint several
daemons can share (L{multistore.web.endpoints}).
"""

from twisted.application.service import ServiceMaker

from multistore.web.endpoints import ReusePortParser

multistore = ServiceMaker(
    "multistore",
    "multistore.tap",
    "An S3-compatible gateway in front of many stores.",
    "multistore",
)

reuseport = ReusePortParser()
