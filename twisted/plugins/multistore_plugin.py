"""twistd plugin: ``twistd multistore``; the daemon itself is in L{multistore.tap}."""

from twisted.application.service import ServiceMaker

multistore = ServiceMaker(
    "multistore",
    "multistore.tap",
    "An S3-compatible gateway in front of many stores.",
    "multistore",
)
