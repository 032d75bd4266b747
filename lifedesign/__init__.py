"""lifedesign: the event manager of Kanazawa ward's youth life-design and childcare-exchange programmes."""

import os

# Piccolo finds its engine through this module; set before any table is touched.
os.environ.setdefault("PICCOLO_CONF", "lifedesign.piccolo_conf")

__version__ = "0.1.0"
