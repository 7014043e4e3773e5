"""The template's core: template-owned, kept current by `./run update`; your files are the ones beside it.

One name in every fork and flavour, so that code moves between sibling forks byte for byte.
"""
