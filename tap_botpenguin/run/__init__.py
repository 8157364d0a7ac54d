"""The run as the streams see it: its settings, clock, shared counts, and how a read is made.

Between the streams (SDK) and the layers they use: it wires a listing's reader from its
parts (client, pages ahead, end of listing, scan) and owns what every listing shares.
"""
