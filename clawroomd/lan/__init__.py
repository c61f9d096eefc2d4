"""LAN discovery: DNS-SD over multicast DNS (python-zeroconf, imported only when discovery runs).

`txt` (pure: what a daemon advertises and how an advert is read), `interfaces` (which interfaces to use),
`mdns` (the trio side: advertise, browse, report sightings). The daemon decides what a sighting means.
"""
