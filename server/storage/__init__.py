"""Storage backends behind one interface: ``base.Store``, implemented by ``sqlite`` and ``aws``."""
