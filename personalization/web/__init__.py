"""The operator's dashboard in the browser (``cardline serve``): pages and a live stream on the
line's journal, through the service layer; see :mod:`personalization.web.app`."""
