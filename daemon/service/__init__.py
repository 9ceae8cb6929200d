"""`assetd run`: watcher → scan queue → one writer thread; ticker; runner (lifecycle, signals).

runner.py starts everything and owns the main loop; watcher.py turns filesystem events into
rel paths in queue.py's scan queue; writer.py is the only thread that writes to the database;
ticker.py enqueues the periodic tick and says what it does; notify.py speaks sd_notify.
"""
