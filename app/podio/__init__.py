"""Pod I/O: reaching a pod (``access``), copying its files and a database dump into a
folder (``stage``), putting a tree and a dump back (``write``), and its stop/start hooks
around both (``hooks``). Backups, exports and restores use it; it knows no repository."""
