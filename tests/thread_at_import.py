"""A module that starts a thread when imported, as a library might: tests/test_warm_run.py preloads it."""

import threading
import time

threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
