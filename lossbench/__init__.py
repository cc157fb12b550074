"""lossbench: which loss should I train with, at this class imbalance, on this model?"""

__version__ = "0.1.0"
