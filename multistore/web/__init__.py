"""
The HTTP edge: the Site, the request factory and the resource that hands each
request to the gateway and streams its response.
"""
